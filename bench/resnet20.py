#!/usr/bin/env python3
"""The main job: ResNet20 on CIFAR-10 images from the shipped sample.

Today this runs the plaintext reference only; the encrypted path is built by the open issues
(compiler/simulator, then the OpenFHE backend) and will replace this body.
"""

from __future__ import annotations

import sys

from resnet_fhe.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(["evaluate", "--model", "resnet20", "--mode", "plain", "--sample", *args]))
