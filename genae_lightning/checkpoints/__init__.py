"""Files of a trained method, in one place: how they are written, read, checked and shared.

- :mod:`.reading`: ``read_checkpoint``, the one way a checkpoint is read (weights-only), and the
  errors of a bad file;
- :mod:`.io`: ``SafeCheckpointIO``, the Lightning plugin that writes checkpoints atomically and
  reads them through ``read_checkpoint``;
- :mod:`.module`: ``CheckpointedModule``, the base of every method's checkpoint hooks (its
  class recorded, hyperparameters saved as plain settings, the image shape checked on load);
- :mod:`.hparams`: hyperparameters read from a file, checked before a model is built;
- :mod:`.loading`: ``load_method``, a method rebuilt from a checkpoint without its config;
- :mod:`.pretrained`: pretrained folders (``model.safetensors``, ``config.json``, a model card)
  and the Hugging Face Hub.

The submodules are imported where they are used; this package imports none of them, so reading
a checkpoint does not load the pretrained folders' dependencies.
"""
