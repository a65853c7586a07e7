# shellcheck shell=bash
# Builds the Lookout SD card image. Sourced by scripts/build-image (Debian flavour) and by
# board/rpi4/post-build.sh and post-image.sh (both flavours: Buildroot calls those too).

LOOKOUT_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOOKOUT_BOARD="$LOOKOUT_REPO/board/rpi4"
# Outside the repository so a fresh checkout on the same machine reuses it.
LOOKOUT_IMAGE_CACHE="${LOOKOUT_IMAGE_CACHE:-$HOME/.cache/lookout-image}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
AARCH64_TARGET=aarch64-unknown-linux-gnu

log() { echo "build-image: $*" >&2; }

# Words of a package list file, comments dropped, comma separated.
list_words() { sed 's/#.*//' "$1" | tr -s ' \n' '\n' | grep -v '^$' | paste -sd, -; }

# Host tools of the Debian flavour. qemu-user runs the arm64 maintainer scripts; its binfmt
# entry is registered here because CI machines run no systemd to do it.
image_host_tools() {
  apt_install_missing mmdebstrap arch-test qemu-user-static genimage mtools dosfstools e2fsprogs fdisk \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    as_root /usr/lib/systemd/systemd-binfmt /usr/lib/binfmt.d/qemu-aarch64.conf
  fi
  rustup target add "$AARCH64_TARGET" >/dev/null
}

# Bumped when image_base_rootfs changes how it builds; with the package and module lists it
# makes the cache key of the base root filesystem.
BASE_ROOTFS_RECIPE=2
base_rootfs_key() {
  { echo "$BASE_ROOTFS_RECIPE"; cat "$LOOKOUT_BOARD"/debian/{packages,initramfs-modules,dpkg-excludes}; } |
    sha256sum | cut -c1-16
}

# A build killed half way (or two builds at once: a CI run beside a clean-slate run) can leave
# mmdebstrap's /proc, /sys and /dev mounts inside a cache directory. Removing or copying such a
# directory would walk into the host's kernel files, so they are unmounted first and removal
# never leaves the cache's own file system.
cache_remove() {
  local dir="$1" mnt
  while read -r mnt; do
    [ -n "$mnt" ] && as_root umount -l "$mnt"
  done < <(findmnt -rn -o TARGET | grep -F "$dir" | sort -r)
  as_root rm -rf --one-file-system "$dir"
}

# Runs "$@" holding the image cache's lock, so two builds on one machine never build into the
# same directory at once (the second waits, then finds the first one's result).
with_cache_lock() {
  mkdir -p "$LOOKOUT_IMAGE_CACHE"
  (
    flock 9
    "$@"
  ) 9> "$LOOKOUT_IMAGE_CACHE/.lock"
}

# Builds a cache entry with "$2 <dir>" into a scratch directory beside "$1", then renames it to
# "$1" and marks it done: a failed or killed build leaves nothing that looks finished.
cache_build() {
  local dir="$1" build="$2" scratch="$1.partial"
  [ -e "$dir.done" ] && return 0
  cache_remove "$scratch"
  cache_remove "$dir"
  "$build" "$scratch" || { log "building $dir failed"; cache_remove "$scratch"; return 1; }
  as_root mv "$scratch" "$dir"
  as_root touch "$dir.done"
}

# mmdebstrap of the base root filesystem into $1.
build_base_rootfs() {
  local excludes=()
  log "building the base root filesystem (arm64 under qemu-user, ~5 min once)"
  mapfile -t excludes < <(grep '^path-' "$LOOKOUT_BOARD/debian/dpkg-excludes" | sed 's/^/--dpkgopt=/')
  # The kernel's postinst would build the initramfs with every module, and again for each
  # trigger: update-initramfs is a no-op while packages install, then runs once, small.
  as_root mmdebstrap --mode=root --architectures=arm64 --variant=minbase \
    --components=main,non-free-firmware \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt=force-unsafe-io "${excludes[@]}" \
    --include="$(list_words "$LOOKOUT_BOARD/debian/packages")" \
    --essential-hook='chroot "$1" dpkg-divert --quiet --local --rename --add /usr/sbin/update-initramfs' \
    --essential-hook='ln -s /bin/true "$1/usr/sbin/update-initramfs"' \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"' \
    --essential-hook='echo MODULES=list > "$1/etc/initramfs-tools/conf.d/lookout"' \
    --essential-hook="sed 's/#.*//' '$LOOKOUT_BOARD/debian/initramfs-modules' >> \"\$1/etc/initramfs-tools/modules\"" \
    --customize-hook='rm "$1/usr/sbin/update-initramfs"' \
    --customize-hook='chroot "$1" dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs' \
    --customize-hook='chroot "$1" update-initramfs -c -k all' \
    --customize-hook='cd "$1/var/cache" && APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-get download -q raspi-firmware:arm64' \
    --customize-hook='rm -rf "$1/var/lib/apt/lists/"*' \
    bookworm "$1" "$DEBIAN_MIRROR" >&2
}

# Prints the directory of the base root filesystem (Debian packages installed, initramfs
# built once), building it when the cache has none for the current package list.
image_base_rootfs() {
  local dir
  dir="$LOOKOUT_IMAGE_CACHE/rootfs-$(base_rootfs_key)"
  with_cache_lock cache_build "$dir" build_base_rootfs || return 1
  echo "$dir"
}

SYSROOT_RECIPE=2
# Extract-only mmdebstrap of arm64 GStreamer headers, .pc files and libraries into $1.
build_sysroot() {
  log "extracting the arm64 sysroot"
  # libgstreamer-plugins-bad1.0-dev drags in OpenCV's headers; only its .pc files and
  # library links are needed, so it is extracted by itself without its dependencies.
  as_root mmdebstrap --mode=root --architectures=arm64 --variant=extract \
    --include=libc6-dev,linux-libc-dev,libgstreamer1.0-dev,libgstreamer-plugins-base1.0-dev,libgstreamer-plugins-bad1.0-0,libgstrtspserver-1.0-dev \
    --extract-hook='mkdir -p "$1/tmp" && cd "$1/tmp" && APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-get download -q libgstreamer-plugins-bad1.0-dev:arm64 && dpkg -x ./*.deb "$1" && rm ./*.deb' \
    bookworm "$1" "$DEBIAN_MIRROR" >&2
}

# Prints the path of a sysroot to cross-compile the daemon against. No emulation, a minute
# or two.
image_sysroot() {
  local dir="$LOOKOUT_IMAGE_CACHE/sysroot-$SYSROOT_RECIPE"
  with_cache_lock cache_build "$dir" build_sysroot || return 1
  echo "$dir"
}

FIXTURES_RECIPE=1
# The image boot test's Wi-Fi side runs busybox inside the guest (udhcpd, udhcpc, nslookup,
# wget): Debian's static arm64 build, extracted into $1. A test fixture, never in the image.
build_fixtures() {
  log "extracting the arm64 busybox of the image test's Wi-Fi side"
  as_root mmdebstrap --mode=root --architectures=arm64 --variant=extract --include=busybox-static \
    bookworm "$1" "$DEBIAN_MIRROR" >&2
}

# Prints the directory holding the image test's fixtures (bin/busybox).
image_fixtures() {
  local dir="$LOOKOUT_IMAGE_CACHE/fixtures-$FIXTURES_RECIPE"
  with_cache_lock cache_build "$dir" build_fixtures || return 1
  echo "$dir"
}

# Cross-compiles the daemon for the Pi; prints the binary's path.
image_cross_build() {
  local sysroot="$1"
  (
    cd "$LOOKOUT_REPO"
    export PKG_CONFIG_SYSROOT_DIR="$sysroot"
    export PKG_CONFIG_LIBDIR="$sysroot/usr/lib/aarch64-linux-gnu/pkgconfig:$sysroot/usr/share/pkgconfig"
    export PKG_CONFIG_ALLOW_CROSS=1
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=--sysroot=$sysroot -C link-arg=-Wl,-rpath-link,$sysroot/usr/lib/aarch64-linux-gnu -C link-arg=-Wl,-rpath-link,$sysroot/lib/aarch64-linux-gnu"
    # v4l2-sys generates its bindings from the target's kernel headers.
    export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=aarch64-linux-gnu --sysroot=$sysroot -I$sysroot/usr/include/aarch64-linux-gnu"
    cargo build --release --locked --target "$AARCH64_TARGET" --bin lookout >&2
  )
  echo "$LOOKOUT_REPO/target/$AARCH64_TARGET/release/lookout"
}

# Units the image starts at boot: ours from overlays/rootfs, and the system's networking.
LOOKOUT_UNITS=(
  local-fs.target.wants:data.mount local-fs.target.wants:boot-firmware.mount
  local-fs.target.wants:tmp.mount local-fs.target.wants:var-tmp.mount
  local-fs.target.wants:var-log.mount local-fs.target.wants:var-lib-systemd.mount
  local-fs.target.wants:var-lib-systemd-timesync.mount
  multi-user.target.wants:lookout-data.service multi-user.target.wants:lookout.service
  multi-user.target.wants:lookout-system.service multi-user.target.wants:lookout-network.path
  multi-user.target.wants:lookout-reboot.path
)
SYSTEM_UNITS=(
  multi-user.target.wants:systemd-networkd.service sockets.target.wants:systemd-networkd.socket
  multi-user.target.wants:systemd-resolved.service multi-user.target.wants:avahi-daemon.service
)

# Shared by both flavours, after the overlay is in place: mount points, the service user,
# enabled units, and what a read-only root needs.
image_post_build() {
  local root="$1" entry
  mkdir -p "$root/data" "$root/boot/firmware"
  # Empty: systemd makes a machine id in /run at each boot on a read-only root.
  : > "$root/etc/machine-id"
  # Buildroot makes the user from board/rpi4/users.txt after this script; the Debian
  # flavour makes the same one here, with the same ids.
  if [ -z "${BR2_CONFIG:-}" ]; then
    grep -q '^gpio:' "$root/etc/group" || groupadd --root "$root" --gid 901 gpio
    if ! grep -q '^lookout:' "$root/etc/passwd"; then
      useradd --root "$root" --uid 900 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin --groups video,gpio lookout
    fi
  fi
  for entry in "${LOOKOUT_UNITS[@]}"; do
    mkdir -p "$root/etc/systemd/system/${entry%%:*}"
    ln -sfn "../${entry#*:}" "$root/etc/systemd/system/${entry%%:*}/${entry#*:}"
  done
  for entry in "${SYSTEM_UNITS[@]}"; do
    if [ -e "$root/usr/lib/systemd/system/${entry#*:}" ]; then
      mkdir -p "$root/etc/systemd/system/${entry%%:*}"
      ln -sfn "/usr/lib/systemd/system/${entry#*:}" "$root/etc/systemd/system/${entry%%:*}/${entry#*:}"
    fi
  done
  # Debian's D-Bus wpa_supplicant (masked in the overlay) would take /run/wpa_supplicant for
  # group netdev; Lookout's own (lookout-wifi@.service) serves the radio.
  rm -f "$root"/etc/systemd/system/{multi-user.target.wants/wpa_supplicant.service,dbus-fi.w1.wpa_supplicant1.service}
  # Package timers that would only fail against a read-only root.
  rm -f "$root"/etc/systemd/system/timers.target.wants/{apt-daily,apt-daily-upgrade,dpkg-db-backup}.timer
  grep -q 'lookout' "$root/etc/hosts" 2>/dev/null || echo "127.0.1.1	lookout" >> "$root/etc/hosts"
}

# Shared by both flavours: stages the boot partition and lays out the card with genimage.
# $1 holds rootfs.ext4, and either Buildroot's kernel and rpi-firmware/ or, from
# scripts/build-image, boot-debian/ (kernel, initramfs, device tree, Pi firmware).
image_post_image() {
  local images="$1" stage tmp
  stage="$images/genimage-root"
  rm -rf "$stage" && mkdir -p "$stage/boot"
  cp "$LOOKOUT_BOARD/config.txt" "$LOOKOUT_BOARD/cmdline.txt" "$stage/boot/"
  if [ -n "${BR2_CONFIG:-}" ]; then
    cp -r "$images"/rpi-firmware/{start4.elf,fixup4.dat,overlays} "$stage/boot/"
    cp "$images/Image" "$images/bcm2711-rpi-4-b.dtb" "$stage/boot/"
    printf '%s\n' "# Buildroot's Raspberry Pi kernel, which mounts the root partition itself." \
      "kernel=Image" >> "$stage/boot/config.txt"
  else
    cp -r "$images/boot-debian/." "$stage/boot/"
    printf '%s\n' "# Debian's arm64 kernel and its initramfs (which holds the SD card driver)." \
      "kernel=vmlinuz" "initramfs initrd.img followkernel" >> "$stage/boot/config.txt"
  fi
  tmp="$(mktemp -d)"
  genimage --rootpath "$stage" --tmppath "$tmp/genimage" --inputpath "$images" \
    --outputpath "$images" --config "$LOOKOUT_BOARD/genimage.cfg"
  rm -rf "$tmp"
}

# Debian flavour: base root filesystem + overlay + daemon → rootfs.ext4 and boot files in
# $3, then the card image. Runs as root (file ownership in the image).
image_debian_assemble() {
  local base="$1" binary="$2" out="$3" root kver
  root="$out/rootfs"
  rm -rf "$root" "$out/boot-debian" && mkdir -p "$out/boot-debian"
  cp -a --one-file-system "$base" "$root"
  cp -a "$LOOKOUT_REPO/overlays/rootfs/." "$root/"
  install -m 0755 --strip-program=aarch64-linux-gnu-strip -s "$binary" "$root/usr/bin/lookout"
  "$LOOKOUT_BOARD/post-build.sh" "$root"

  kver="$(basename "$(ls -d "$root"/lib/modules/*)")"
  cp "$root/boot/vmlinuz-$kver" "$out/boot-debian/vmlinuz"
  cp "$root/boot/initrd.img-$kver" "$out/boot-debian/initrd.img"
  cp "$root/usr/lib/linux-image-$kver/broadcom/bcm2711-rpi-4-b.dtb" "$out/boot-debian/"
  local fw
  fw="$(mktemp -d)"
  dpkg -x "$root"/var/cache/raspi-firmware_*.deb "$fw"
  cp "$fw"/usr/lib/raspi-firmware/{start4.elf,fixup4.dat} "$out/boot-debian/"
  # The kernel and initramfs live on the boot partition; /boot keeps only its mount point.
  rm -rf "$fw" "$root"/var/cache/raspi-firmware_*.deb
  rm -f "$root"/boot/{vmlinuz,initrd.img,System.map,config}-*

  local mb
  mb="$(du -sm "$root" | cut -f1)"
  rm -f "$out/rootfs.ext4"
  mke2fs -q -t ext4 -L lookout-root -d "$root" -E root_owner=0:0 "$out/rootfs.ext4" "$((mb * 5 / 4 + 64))M"
  "$LOOKOUT_BOARD/post-image.sh" "$out"
  # The card holds them now; kept, they took 1.7 GB of a CI machine's disk for nothing.
  echo "$mb" > "$out/rootfs.used-mb"
  rm -rf "$root" "$out/genimage-root" "$out"/{rootfs.ext4,boot.vfat,data.ext4}
}

# Prints the path of a qemu-system-aarch64 for the boot test. Debian's qemu-system-arm 7.2
# conflicts with the backported qemu-utils some machines carry, so it is unpacked into the
# cache instead of installed; its libraries are installed normally (they do not conflict).
image_qemu() {
  local dir="$LOOKOUT_IMAGE_CACHE/qemu"
  if [ ! -x "$dir/usr/bin/qemu-system-aarch64" ]; then
    log "unpacking qemu-system-arm"
    local deps
    deps="$(apt-cache depends --no-recommends --no-suggests qemu-system-arm qemu-system-common |
      awk '/Depends:/ {print $2}' | grep -v -e '^qemu-' -e '^<' | sort -u)"
    # shellcheck disable=SC2086
    apt_install_missing $deps >&2
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    (cd "$dir.tmp" && apt-get download -q qemu-system-arm qemu-system-common qemu-system-data >&2)
    for deb in "$dir.tmp"/*.deb; do dpkg -x "$deb" "$dir.tmp"; done
    rm -f "$dir.tmp"/*.deb && rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir/usr/bin/qemu-system-aarch64"
}
