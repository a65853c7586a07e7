#!/usr/bin/env bash
# Buildroot post-build hook (and step of scripts/build-image): $1 is the target root.
set -euo pipefail
# shellcheck source=scripts/lib/image.sh
. "$(dirname "$0")/../../scripts/lib/image.sh"
image_post_build "$1"
