"""Network pieces shared by encoders: the transformer trunk and a DDP-exact SyncBatchNorm."""
