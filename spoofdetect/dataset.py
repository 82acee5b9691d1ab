"""Finding the clips of a dataset laid out as ROOT/{train,dev,eval}/{real,fake}/*, or listed
by protocol files (spoofdetect/protocol.py).

Listing goes through Beam's FileSystems, so ROOT may be a local folder or a gs:// (or other
Beam-supported) URI. Every file found becomes a `ClipSource`: the extraction job either turns it
into examples or reports it as rejected, so no file is dropped silently.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath

from apache_beam.io.filesystems import FileSystems

from spoofdetect.audio import AUDIO_EXTENSIONS
from spoofdetect.config import LABELS, SPLITS, FeatureConfig, is_uri
from spoofdetect.errors import UserError
from spoofdetect.protocol import MISSING, protocol_entries

LAYOUT = "ROOT/{train,dev,eval}/{real,fake}/*.wav"


@dataclasses.dataclass(frozen=True)
class ClipSource:
    split: str
    label: str  # 'real' or 'fake'
    relative_path: str  # to the dataset root, '/'-separated
    size_bytes: int
    modified: float = 0.0  # seconds since the epoch, as the file system reports it
    attack: str = ""
    speaker: str = ""
    utterance: str = ""  # the protocol's utterance id, when it names one

    @property
    def label_id(self) -> int:
        return LABELS[self.label]

    @property
    def clip_id(self) -> str:
        if self.utterance:
            return self.utterance
        stem = posixpath.splitext(self.relative_path)[0]
        return stem.replace("/", "_")


def join(root: str, relative_path: str) -> str:
    return FileSystems.join(root, *relative_path.split("/"))


def _list_folder(root: str, split: str, label: str) -> list[tuple[str, int, float]] | None:
    """(relative path, size, mtime) of each file in ROOT/split/label; None: no such folder."""
    folder = FileSystems.join(root, split, label)
    # '**' reaches into subfolders too (per-speaker folders are common): no file is skipped.
    pattern = FileSystems.join(folder, "**")
    try:
        matches = FileSystems.match([pattern])[0].metadata_list
    except Exception as error:  # Beam raises BeamIOError and others for unreadable locations
        raise UserError(f"Cannot list {folder}: {error}") from error
    if not matches and not _folder_exists(folder):
        return None
    files = []
    prefix = folder.rstrip("/") + "/"
    for metadata in matches:
        name = metadata.path[len(prefix):] if metadata.path.startswith(prefix) else (
            posixpath.basename(metadata.path))
        if not name or name.endswith("/"):
            continue
        files.append((f"{split}/{label}/{name}", int(metadata.size_in_bytes),
                      float(metadata.last_updated_in_seconds or 0.0)))
    return sorted(files)


def _folder_exists(folder: str) -> bool:
    if is_uri(folder):
        # Object stores have no folders: an empty prefix and a missing one look the same.
        return False
    return os.path.isdir(folder)


def _listing(root: str) -> dict[str, tuple[int, float]]:
    """Every file under the root: relative path -> (size, modification time)."""
    try:
        matches = FileSystems.match([FileSystems.join(root, "**")])[0].metadata_list
    except Exception as error:  # Beam raises BeamIOError and others for unreadable locations
        raise UserError(f"Cannot list {root}: {error}") from error
    prefix = root.rstrip("/") + "/"
    return {metadata.path[len(prefix):]: (int(metadata.size_in_bytes),
                                          float(metadata.last_updated_in_seconds or 0.0))
            for metadata in matches if metadata.path.startswith(prefix)}


def _protocol_sources(root: str, config: FeatureConfig) -> list[ClipSource]:
    """The clips the protocol files list; one not found under the root gets size MISSING and
    is rejected by the extraction job with that reason."""
    files = _listing(root)
    return [ClipSource(entry.split, entry.label, entry.path,
                       *files.get(entry.path, (MISSING, 0.0)), attack=entry.attack,
                       speaker=entry.speaker, utterance=entry.utterance)
            for entry in protocol_entries(config)]


def _layout_sources(root: str) -> list[ClipSource]:
    sources: list[ClipSource] = []
    missing = []
    for split in SPLITS:
        for label in LABELS:
            files = _list_folder(root, split, label)
            if files is None:
                missing.append(f"{split}/{label}")
                continue
            sources.extend(ClipSource(split, label, path, size, modified)
                           for path, size, modified in files)
    if missing:
        raise UserError(
            f"Dataset {root} is missing the folder(s) {', '.join(missing)}. Expected the layout "
            f"{LAYOUT}, or give protocol files (features.protocol); create each folder and put "
            f"that split's clips of that class in it.")
    return sources


def scan_dataset(root: str, config: FeatureConfig | None = None) -> list[ClipSource]:
    """Every clip of the dataset: the files under the six class folders, or the entries of
    the protocol files when `config.protocol` names any. Raises UserError for a dataset that
    cannot work.

    Fatal: a missing root, a missing split or class folder, no audio at all, or a split without
    one of the two classes (the classifier and the metrics need both everywhere).
    """
    if not root:
        raise UserError("No dataset given: pass --data-root DIR laid out as " + LAYOUT + ".")
    if not is_uri(root) and not os.path.isdir(root):
        raise UserError(f"Dataset root {root} does not exist or is not a folder. "
                        f"Expected the layout {LAYOUT}.")
    by_protocol = bool(config and config.protocol)
    sources = _protocol_sources(root, config) if by_protocol else _layout_sources(root)
    audio = [source for source in sources if source.relative_path.lower().endswith(
        AUDIO_EXTENSIONS) and source.size_bytes != MISSING]
    if not audio:
        raise UserError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) found under {root}"
                        + (" for the entries of the protocol files." if by_protocol else
                           f". Expected the layout {LAYOUT}."))
    for split in SPLITS:
        for label in LABELS:
            if not any(s.split == split and s.label == label for s in audio):
                where = ("the protocol files list none that exist" if by_protocol else
                         f"{root}/{split}/{label} holds no audio files")
                raise UserError(
                    f"The {split} split has no {label} clips ({where}). Every split needs "
                    f"both classes: training needs both to learn, dev and eval need both to "
                    f"measure EER. Add {label} clips there.")
    return sources


def dataset_fingerprint(root: str, config: FeatureConfig | None = None) -> str:
    """A digest of every clip's name, size and modification time (and of the protocol files'
    text, when the dataset is described by them).

    It changes when the dataset does, so a pipeline's cache is reused only for the same files.
    The listing is `scan_dataset`'s, so an unusable dataset fails here, before any run starts.
    """
    digest = hashlib.sha256(root.encode())
    for source in scan_dataset(root, config):
        digest.update(f"{source.relative_path}\t{source.size_bytes}\t{source.modified}\t"
                      f"{source.attack}\t{source.speaker}\n".encode())
    return digest.hexdigest()
