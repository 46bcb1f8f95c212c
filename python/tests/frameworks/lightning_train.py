"""A tiny Lightning run for the integration tests (a child process).

    python lightning_train.py STORE ROOT_DIR fresh|kill|resume

60 optimizer steps of a 2-layer MLP on CPU, a checkpoint every 20 steps (and last.ckpt), a
log every step. `kill` SIGKILLs the process right after the step-49 log (Lightning's steps
are 0-based; flushed first, so that the rows after the last checkpoint are on disk); `resume`
fits again from the step-40 checkpoint.
"""

import os
import signal
import sys

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from runstore.integrations.lightning import RunstoreLogger

store, root, mode = sys.argv[1:4]


class Mlp(L.LightningModule):
    def __init__(self, lr: float = 1e-2, hidden: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layers = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def training_step(self, batch, index):
        x, y = batch
        loss = nn.functional.mse_loss(self.layers(x).squeeze(-1), y)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


class Kill(L.Callback):
    def on_train_batch_start(self, trainer, module, batch, index):
        # The batch that took global_step to 50 has logged at step 49 by now.
        if mode == "kill" and trainer.global_step == 50:
            trainer.logger.experiment.flush()
            print("killing after step 49", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


torch.manual_seed(0)
x = torch.randn(512, 4, generator=torch.Generator().manual_seed(0))
data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(-1)), batch_size=8)
logger = RunstoreLogger(dir=store, id="lightning-run", project="pl")
checkpoints = ModelCheckpoint(dirpath=os.path.join(root, "ckpt"), every_n_train_steps=20, save_top_k=-1, save_last=True)
trainer = L.Trainer(
    max_steps=60,
    logger=logger,
    callbacks=[checkpoints, Kill()],
    log_every_n_steps=1,
    accelerator="cpu",
    devices=1,
    enable_progress_bar=False,
    enable_model_summary=False,
    default_root_dir=root,
)
ckpt = os.path.join(root, "ckpt", "epoch=0-step=40.ckpt") if mode == "resume" else None
trainer.fit(Mlp(), data, ckpt_path=ckpt)
print("rewound", logger.rewound, flush=True)
