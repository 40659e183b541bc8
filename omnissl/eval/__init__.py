"""The shared evaluation protocol: frozen backbone features → k-NN and linear probe, beside baselines."""
