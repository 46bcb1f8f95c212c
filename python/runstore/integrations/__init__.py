"""Integrations with training frameworks: ``runstore.integrations.transformers`` (Hugging Face
``Trainer``) and ``runstore.integrations.lightning`` (Lightning ``Logger``). Each imports its
framework only when imported itself."""
