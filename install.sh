#!/usr/bin/env bash
# One-step set-up on Debian/Ubuntu: system audio libraries, then a virtual environment in .venv.
#   ./install.sh          the recognizer and its command-line tool
#   ./install.sh --dev    the same plus the test dependencies
set -euo pipefail
cd "$(dirname "$0")"

APT_PACKAGES=(
  libportaudio2 libsndfile1                       # sounddevice / soundfile
  espeak-ng sox                                   # synthetic voices for tests and augmentation
  pulseaudio pulseaudio-utils libasound2-plugins  # the virtual microphone the end-to-end tests use
  python3-venv
)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
extra=""; [ "${1:-}" = "--dev" ] && extra="[dev]"
log=$(mktemp)
if ! .venv/bin/pip install -q --disable-pip-version-check -e ".${extra}" >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" >&2; rm -f "$log"; exit 1
fi
rm -f "$log"
.venv/bin/python -c "import audrey, torch, torchaudio; print('audrey', audrey.__version__, '| torch', torch.__version__)"
