"""Datasets described by protocol files instead of the folder layout.

Two formats, told apart by their first line:

* This project's: a CSV (or tab-separated) file with a header naming at least `split`,
  `label` and `file`, and optionally `attack` and `speaker`. `label` is real/fake (or
  bonafide/spoof); `file` is relative to the dataset root; `attack` is empty or '-' for bona
  fide clips.
* ASVspoof's CM protocols (`ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt`): lines
  `SPEAKER UTTERANCE - ATTACK KEY`, KEY bonafide or spoof. The split comes from the file name
  and the audio path from `features.protocol_audio` (default
  `ASVspoof2019_LA_{split}/flac/{utt}.flac`).

Every path stays inside the dataset root: absolute paths, URLs and `..` are refused with the
line that holds them. A listed file that does not exist becomes a named rejection.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import posixpath
import re

from apache_beam.io.filesystems import FileSystems

from spoofdetect.config import SPLITS, FeatureConfig, is_uri
from spoofdetect.errors import UserError

LABEL_NAMES = {"real": "real", "fake": "fake", "bonafide": "real", "bona-fide": "real",
               "spoof": "fake"}
MISSING = -1  # size_bytes of a listed file that is not there


@dataclasses.dataclass(frozen=True)
class ProtocolEntry:
    split: str
    label: str  # real or fake
    path: str  # relative to the dataset root, '/'-separated
    attack: str = ""
    speaker: str = ""
    utterance: str = ""  # ASVspoof's utterance id, kept as the clip id in score files


def _read(path: str) -> str:
    try:
        with FileSystems.open(path, compression_type="uncompressed") as handle:
            return handle.read().decode("utf-8")
    except Exception as error:  # Beam's I/O errors vary by file system
        raise UserError(f"Cannot read the protocol file {path}: {error}") from error


def inside_root(path: str, where: str) -> str:
    """The '/'-separated path relative to the root, or a UserError naming `where`."""
    path = path.strip().replace("\\", "/")
    normal = posixpath.normpath(path) if path else ""
    if (not path or path.startswith("/") or is_uri(path) or re.match(r"^[A-Za-z]:", path)
            or normal == ".." or normal.startswith("../")):
        raise UserError(f"{where}: the path {path!r} is not inside the dataset root; protocol "
                        "paths must be relative to the root and may not use '..'.")
    return normal


def _label(value: str, where: str) -> str:
    label = LABEL_NAMES.get(value.strip().lower())
    if label is None:
        raise UserError(f"{where}: label {value!r} is not one of "
                        f"{', '.join(sorted(LABEL_NAMES))}.")
    return label


def _split_of(path: str) -> str:
    name = posixpath.basename(path).lower()
    found = [split for split in SPLITS if f".{split}." in name or f"_{split}." in name
             or f".{split}_" in name]
    if len(found) != 1:
        raise UserError(f"Cannot tell the split of the ASVspoof protocol {path} from its name; "
                        "it should contain .train., .dev. or .eval. (as "
                        "ASVspoof2019.LA.cm.dev.trl.txt does).")
    return found[0]


def read_protocol(path: str, config: FeatureConfig) -> list[ProtocolEntry]:
    """The entries of one protocol file."""
    text = _read(path)
    first = text.splitlines()[0] if text.strip() else ""
    if not first:
        raise UserError(f"The protocol file {path} is empty.")
    dialect = "excel-tab" if "\t" in first else "excel"
    header = [name.strip().lower() for name in next(csv.reader([first], dialect=dialect))]
    entries = []
    if {"split", "label", "file"} <= set(header):
        for number, row in enumerate(csv.DictReader(io.StringIO(text), dialect=dialect),
                                     start=2):
            row = {key.strip().lower(): (value or "").strip() for key, value in row.items()
                   if key}
            where = f"{path}, line {number}"
            if row["split"] not in SPLITS:
                raise UserError(f"{where}: split {row['split']!r} is not one of "
                                f"{', '.join(SPLITS)}.")
            attack = row.get("attack", "")
            entries.append(ProtocolEntry(row["split"], _label(row["label"], where),
                                         inside_root(row["file"], where),
                                         "" if attack == "-" else attack,
                                         row.get("speaker", "")))
        return entries
    split = _split_of(path)
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}, line {number}"
        if len(fields) != 5:
            raise UserError(f"{where}: expected 'SPEAKER UTTERANCE - ATTACK KEY' (ASVspoof) or "
                            f"a header with split,label,file; got {line.strip()!r}.")
        speaker, utterance, _, attack, key = fields
        audio = config.protocol_audio.format(split=split, utt=utterance)
        entries.append(ProtocolEntry(split, _label(key, where), inside_root(audio, where),
                                     "" if attack == "-" else attack, speaker,
                                     inside_root(utterance, where)))
    return entries


def protocol_entries(config: FeatureConfig) -> list[ProtocolEntry]:
    entries = []
    for path in config.protocol:
        entries.extend(read_protocol(path, config))
    seen = set()
    for entry in entries:
        if entry.path in seen:
            raise UserError(f"{entry.path} is listed twice in the protocol files; each clip "
                            "belongs to one split and one label.")
        seen.add(entry.path)
    if not entries:
        raise UserError(f"The protocol files {', '.join(config.protocol)} list no clips.")
    return entries

