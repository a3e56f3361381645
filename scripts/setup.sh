#!/usr/bin/env bash
# Installs the system packages RocKontrol's build, demo and tests need on Debian 12,
# skipping whatever is already there. Idempotent; safe to run on every `./dev` call.
set -euo pipefail

# Build: a C compiler (rustc links with cc; ring, the TLS crypto, and blake3 compile C),
# pkg-config + GStreamer dev libs (media), udev for serialport enumeration.
# Media: libav decoders (avdec_h264/h265) for playback, ffmpeg to make test clips.
# Timecode: libltc (an independent LTC encoder/decoder for the tests, built with cc).
# Peers for interop tests: OLA (olad, ola_set_dmx), tshark, avahi (avahi-browse), iproute2.
# Rendering without a GPU: Xvfb + Mesa's lavapipe Vulkan driver; xwd (x11-apps) screenshots the screen.
PACKAGES=(
  gcc libc6-dev pkg-config libudev-dev ffmpeg
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-tools
  gstreamer1.0-libav ffmpeg
  libltc-dev
  ola tshark dbus avahi-daemon avahi-utils libnss-mdns iproute2 procps curl
  xvfb xauth x11-apps mesa-vulkan-drivers libvulkan1 libx11-dev libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "setup: installing ${#missing[@]} missing system packages: ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
$SUDO apt-get update -q >&2
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
echo "setup: system packages ready" >&2
