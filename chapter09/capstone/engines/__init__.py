"""Where the work runs, for indexing and captioning alike: ``local`` (DataLoader decode workers started by a fork
server, the model in this process) and ``ray_cluster`` (joining or starting Ray, sizing actor pools, streaming
batches back). ``ENGINES`` names them for ``--engine``."""
ENGINES = ("local", "ray")
