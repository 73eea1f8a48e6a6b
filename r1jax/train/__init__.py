"""The training runtime every stage shares: the loop (resume, checkpoints, SIGTERM, non-finite
guard), Orbax checkpoints, the optimizer, the next-token LM step, metric writers and plots, and the
fault hooks the preemption tests install.

May import: model, parallel.
"""
