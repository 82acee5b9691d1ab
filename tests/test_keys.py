"""The names in components/keys.py that TFX also defines are TFX's: the Pusher and
LatestBlessedModelStrategy read the blessing by them, the run summary the Pusher's output."""

from tfx.components.evaluator import constants
from tfx.components.pusher import executor as pusher_executor

from spoofdetect.components import keys
from spoofdetect.components.spoof_evaluator.component import SpoofEvaluatorSpec


def test_blessing_names_are_tfx_evaluators():
    assert keys.BLESSED_PROPERTY == constants.ARTIFACT_PROPERTY_BLESSED_KEY
    assert keys.CURRENT_MODEL_PROPERTY == constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY
    assert keys.CURRENT_MODEL_ID_PROPERTY == constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY
    assert keys.BASELINE_MODEL_PROPERTY == constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY
    assert keys.BASELINE_MODEL_ID_PROPERTY == constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY
    assert keys.BLESSED_FILE == constants.BLESSED_FILE_NAME
    assert keys.NOT_BLESSED_FILE == constants.NOT_BLESSED_FILE_NAME


def test_pushed_model_names_are_tfx_pushers():
    assert keys.PUSHED_PROPERTY == pusher_executor._PUSHED_KEY
    assert keys.PUSHED_DESTINATION_PROPERTY == pusher_executor._PUSHED_DESTINATION_KEY
    assert keys.PUSHED_VERSION_PROPERTY == pusher_executor._PUSHED_VERSION_KEY


def test_the_evaluator_spec_is_keyed_by_the_constants():
    assert set(SpoofEvaluatorSpec.INPUTS) == {keys.EXAMPLES_KEY, keys.MODEL_KEY,
                                              keys.BASELINE_MODEL_KEY}
    assert set(SpoofEvaluatorSpec.OUTPUTS) == {keys.EVALUATION_KEY, keys.BLESSING_KEY}
