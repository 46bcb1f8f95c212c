"""A script written for wandb runs after `import runstore as wandb`, unchanged."""

from __future__ import annotations

import argparse
import warnings

import runstore


def wandb_script(wandb, store_dir):
    args = argparse.Namespace(lr=0.01, epochs=3, secret="x")
    run = wandb.init(
        project="mnist",
        entity="team",
        group="ddp-job",
        job_type="train",
        name="baseline",
        notes="first try",
        tags=["cnn"],
        config=args,
        config_exclude_keys=["secret"],
        allow_val_change=True,
        dir=store_dir,
        settings=None,
        save_code=True,
        resume="allow",
        id="mnist-1",
    )
    wandb.define_metric("val/acc", summary="max")
    wandb.config.update({"batch_size": 64}, allow_val_change=True)
    run.watch(object(), log="all")
    for epoch in range(wandb.config.epochs):
        for batch in range(10):
            wandb.log({"train/loss": 1.0 / (1 + epoch * 10 + batch)})
        wandb.log({"val/acc": [0.5, 0.9, 0.7][epoch], "epoch": epoch}, commit=False)
    wandb.summary["best_epoch"] = 1
    wandb.finish()
    return run


def test_a_wandb_script_runs_unchanged(store_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = wandb_script(runstore, store_dir)
    assert (run.group, run.job_type, run.name) == ("ddp-job", "train", "baseline")
    stored = runstore.Api(store_dir).run("team/mnist/mnist-1")
    assert stored.state == "finished" and stored.project == "mnist" and stored.notes == "first try"
    assert stored.config == {"lr": 0.01, "epochs": 3, "batch_size": 64}
    assert stored.summary["val/acc"] == 0.9 and stored.summary["best_epoch"] == 1.0
    rows = list(stored.scan_history())
    # W&B's rule: commit=False adds to the current step, which the next log commits.
    assert len(rows) == 31
    assert rows[10] == {"train/loss": 1.0 / 11, "val/acc": 0.5, "epoch": 0.0, "_step": 10}
    assert rows[30] == {"val/acc": 0.7, "epoch": 2.0, "_step": 30}
