"""resnet-fhe: compile trained CNNs into packed CKKS plans and run them on encrypted images."""

__version__ = "0.1.0"
