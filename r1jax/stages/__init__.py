"""Stage runners: the only readers of the ConfigDict. Each turns its part of the config into the
small frozen dataclasses the library takes and runs one stage of the recipe (pretrain, grpo, eval).

May import: rl, eval, sampling, rewards, data, train, model, tokenizers, text, parallel.
"""
