#!/usr/bin/env bash
# Buildroot post-image hook (and step of scripts/build-image): $1 is the images directory,
# holding rootfs.ext4 and the flavour's kernel and firmware.
set -euo pipefail
# shellcheck source=scripts/lib/image.sh
. "$(dirname "$0")/../../scripts/lib/image.sh"
image_post_image "$1"
