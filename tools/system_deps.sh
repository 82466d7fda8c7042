#!/usr/bin/env bash
# What `make run` and `make test` need from the machine besides Python, installed from Debian's packages
# when absent (root, or sudo), so the README's two commands work on a new machine:
#   run:  Java (the Pub/Sub emulator runs on it) and the Google Cloud CLI with its Pub/Sub emulator
#   up:   the same, plus PostgreSQL (the local Airflow's metadata DB)
#   test: the same, plus Chromium (the UI test)
# usage: tools/system_deps.sh run|up|test
set -euo pipefail
what="${1:?usage: tools/system_deps.sh run|up|test}"

missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
if [ "$what" = up ] || [ "$what" = test ]; then
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
fi
if [ "$what" = test ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi
gcloud_missing=()
if ! command -v gcloud >/dev/null 2>&1; then
  gcloud_missing+=(google-cloud-cli google-cloud-cli-pubsub-emulator)
elif [ ! -d "$(dirname "$(dirname "$(readlink -f "$(command -v gcloud)")")")/platform/pubsub-emulator" ]; then
  gcloud_missing+=(google-cloud-cli-pubsub-emulator)
fi

if [ ${#missing[@]} -eq 0 ] && [ ${#gcloud_missing[@]} -eq 0 ]; then
  exit 0
fi
sudo_cmd=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to install: ${missing[*]} ${gcloud_missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: install these first (no apt-get here): ${missing[*]} ${gcloud_missing[*]}" >&2
  exit 1
fi
echo "Installing what make $what needs: ${missing[*]} ${gcloud_missing[*]}"
# `env` inside sudo: sudo drops DEBIAN_FRONTEND from the caller's environment
apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
"${apt[@]}" update -qq
if [ ${#missing[@]} -gt 0 ]; then
  "${apt[@]}" install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#gcloud_missing[@]} -gt 0 ]; then
  # Google's packages come from Google's apt repository, which Debian does not carry.
  if ! "${apt[@]}" install -y -qq "${gcloud_missing[@]}" >/dev/null; then
    echo "error: ${gcloud_missing[*]} are not in this machine's apt sources. Add Google's repository" \
      "(https://cloud.google.com/sdk/docs/install#deb) and run this again, or install the Cloud CLI and" \
      "\`gcloud components install beta pubsub-emulator\`." >&2
    exit 1
  fi
fi
