"""Component plumbing that needs no pipeline run."""

from spoofdetect.components.wgan_pretrainer.executor import checkpoint_dir_for


def test_checkpoints_of_a_restarted_run_are_found_again():
    model_uri = "/root/pipeline_root/WganPretrainer/model/7"
    same = checkpoint_dir_for(model_uri, "/ex/1", '{"epochs": 3}', "{}")
    # A new execution (new output URI) with the same inputs and config finds the same folder.
    assert checkpoint_dir_for("/root/pipeline_root/WganPretrainer/model/9", "/ex/1",
                              '{"epochs": 3}', "{}") == same
    assert same.startswith("/root/pipeline_root/WganPretrainer/.checkpoints/")
    assert checkpoint_dir_for(model_uri, "/ex/1", '{"epochs": 4}', "{}") != same
    assert checkpoint_dir_for(model_uri, "/ex/2", '{"epochs": 3}', "{}") != same
