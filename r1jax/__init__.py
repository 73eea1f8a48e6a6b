"""r1jax: the DeepSeek-R1 recipe in JAX. Stages: the toy base model (pretrain), GRPO with verifiable
rewards (R1-Zero, reasoning RL, all-scenario RL with reward models), cold-start data, SFT, rejection
sampling, distillation, preference data and reward models, the R1-protocol evaluation, and the
pipeline that chains them from one config. README says which have been measured at toy scale."""

__version__ = "0.1.0"
