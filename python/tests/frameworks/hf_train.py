"""A tiny Hugging Face Trainer run for the integration tests (a child process).

    python hf_train.py STORE OUTPUT_DIR fresh|kill|resume

60 optimizer steps of a 2-layer MLP on CPU, a checkpoint every 20 steps, a log every step.
`kill` SIGKILLs the process right after the step-50 log (flushed first, so that the rows
after the last checkpoint are on disk); `resume` trains again from the last checkpoint.
"""

import os
import signal
import sys

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

import runstore
from runstore.integrations.transformers import RunstoreCallback

store, output_dir, mode = sys.argv[1:4]


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x, labels=None):
        out = self.layers(x).squeeze(-1)
        return {"loss": nn.functional.mse_loss(out, labels), "logits": out}


class Data(torch.utils.data.Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(256, 4, generator=generator)
        self.y = self.x.sum(-1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        return {"x": self.x[index], "labels": self.y[index]}


class KillAfter50(TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == 50:
            runstore.run.flush()
            print("killing at 50", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


torch.manual_seed(0)
args = TrainingArguments(
    output_dir=output_dir,
    max_steps=60,
    per_device_train_batch_size=8,
    learning_rate=1e-2,
    logging_steps=1,
    save_strategy="steps",
    save_steps=20,
    report_to=[],
    use_cpu=True,
    disable_tqdm=True,
    dataloader_num_workers=0,
    seed=0,
)
callback = RunstoreCallback(dir=store, project="hf")
callbacks = [callback] + ([KillAfter50()] if mode == "kill" else [])
trainer = Trainer(model=Mlp(), args=args, train_dataset=Data(), callbacks=callbacks)
trainer.train(resume_from_checkpoint=True if mode == "resume" else None)
print("rewound", callback.rewound, flush=True)
