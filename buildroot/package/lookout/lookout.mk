################################################################################
#
# lookout
#
################################################################################

# The crate is this repository's root; the br2-external tree is its
# buildroot/ directory.
LOOKOUT_SITE = $(BR2_EXTERNAL_LOOKOUT_PATH)/..
LOOKOUT_SITE_METHOD = local
LOOKOUT_LICENSE = MIT
LOOKOUT_DEPENDENCIES = \
	host-pkgconf \
	host-clang \
	libglib2 \
	gstreamer1 \
	gst1-plugins-base \
	gst1-plugins-bad \
	gst1-rtsp-server

# Build outputs, recordings, a Buildroot output directory made inside
# the checkout, and the two paths the vendoring step below owns in the
# build directory. .git is already left out by RSYNC_VCS_EXCLUSIONS.
LOOKOUT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target \
	--exclude=/data \
	--exclude=/output \
	--exclude=/VENDOR \
	--exclude=/.cargo

# v4l2-sys-mit (under the v4l crate) runs bindgen in its build script:
# bindgen loads libclang from host-clang and parses the target's
# <linux/videodev2.h>; it passes --target itself, we add the sysroot.
LOOKOUT_CARGO_ENV = \
	LIBCLANG_PATH=$(HOST_DIR)/lib \
	BINDGEN_EXTRA_CLANG_ARGS_$(subst -,_,$(RUSTC_TARGET_NAME))="--sysroot=$(STAGING_DIR)"

# Vendoring the crates.
#
# cargo-package builds and installs with `cargo --offline --locked`
# and expects the crates in $(@D)/VENDOR, with $(@D)/.cargo/config.toml
# replacing crates-io by that directory. For downloaded packages the
# download post-process (support/download/cargo-post-process) makes
# both, with `cargo vendor --locked VENDOR > .cargo/config.toml`, and
# stores them in the tarball. A local package is rsynced, not
# downloaded, so that never runs; we run the same command, into the
# same layout, just before the build.
#
# Not as a POST_RSYNC hook: the rsync step waits for neither
# host-rustc nor the per-package host directory (only the configure
# step does), so cargo may not exist yet. The build step comes after
# both. It re-vendors only when Cargo.lock differs from the one last
# vendored, so `make lookout-rebuild` after a code change stays
# offline. When Cargo.lock changes it needs the network (or a warm
# $(BR_CARGO_HOME), shared with Buildroot's own vendoring under the
# same lock); we accept that for a local-source package. Every crate is
# still checked against the checksums in Cargo.lock.
#
# The binary goes to /usr/bin/lookout by cargo-package's own install
# step (cargo install --root $(TARGET_DIR)/usr --bins).
define LOOKOUT_CARGO_VENDOR
	if ! cmp -s $(@D)/Cargo.lock $(@D)/.lookout-vendored-Cargo.lock; then \
		mkdir -p $(@D)/.cargo $(BR_CARGO_HOME) && \
		cd $(@D) && \
		$(TARGET_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
			flock $(BR_CARGO_HOME)/.br-lock \
			cargo vendor --locked VENDOR > .cargo/config.toml && \
		cp Cargo.lock .lookout-vendored-Cargo.lock; \
	fi
endef
LOOKOUT_PRE_BUILD_HOOKS += LOOKOUT_CARGO_VENDOR

$(eval $(cargo-package))
