#!/usr/bin/env bash
# A stand-in for the AWS Lambda Python base image, for machines that cannot pull it.
#
# With internet access none of this is needed: `sam local invoke` / `sam local start-api` pull the real image,
# public.ecr.aws/lambda/python:<version>. Where that registry cannot be reached (no Docker Hub either), this
# script builds an image under the same name from Debian packages, so SAM finds it with --skip-pull-image:
#   - a Debian root file system (debootstrap from a Debian mirror): bookworm's python3 is 3.11, trixie's 3.13;
#   - a virtualenv in /var/lang (where the real image keeps Python) with the AWS Lambda runtime interface client
#     (awslambdaric) and boto3 from PyPI, as the real image ships them;
#   - /var/runtime/bootstrap, which starts the runtime interface client; SAM adds its runtime interface
#     emulator (/var/rapid/aws-lambda-rie) on top, as it does with the real image.
#
# Usage:   sudo tools/lambda-base-image.sh [PYTHON_VERSION]     (or: sudo make lambda-base-image)
#   PYTHON_VERSION  3.11 or 3.13; default: the Runtime in template.yaml's Globals (python3.X)
# Needs:   root (debootstrap, chroot), a running Docker daemon (`docker info`), debootstrap
#          (Debian/Ubuntu: apt-get install debootstrap), a Debian mirror and PyPI (or PIP_INDEX_URL's index).
# Environment: LAMBDA_ROOTFS  where the root file system is built (default /var/tmp/lambda-python<version>-rootfs)
#              DEBIAN_MIRROR  the mirror debootstrap uses (default: debootstrap's own, deb.debian.org)
# Idempotent: an image already present is left alone (docker rmi it to rebuild). 2-3 minutes the first time.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
log() { printf 'lambda-base-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

template_runtime() {
  sed -n 's/^ *Runtime: *python\([0-9][0-9.]*\).*/\1/p' "$repo/template.yaml" | head -n 1
}

pyver=${1:-$(template_runtime)}
[ -n "$pyver" ] || die "no Runtime: python3.X in $repo/template.yaml; give the version, e.g. $0 3.13"
case "$pyver" in
  3.11) suite=bookworm ;;
  3.13) suite=trixie ;;
  *) die "Python $pyver: only 3.11 (Debian bookworm) and 3.13 (Debian trixie) can be built this way" ;;
esac
case "$(uname -m)" in
  x86_64) arch=x86_64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) die "unsupported machine $(uname -m)" ;;
esac
tag=public.ecr.aws/lambda/python:$pyver
root=${LAMBDA_ROOTFS:-/var/tmp/lambda-python${pyver/./}-rootfs}

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap and chroot need it): sudo $0 $pyver"
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "Docker is not running (docker info fails): start it first"
command -v debootstrap >/dev/null || die "debootstrap is missing (Debian/Ubuntu: apt-get install debootstrap)"

# SAM asks for the image by version, and for the architecture-tagged name on some paths: both are made.
if docker image inspect "$tag" >/dev/null 2>&1 && docker image inspect "$tag-$arch" >/dev/null 2>&1; then
  log "$tag is already present (docker rmi $tag $tag-$arch to rebuild)"
  exit 0
fi

if [ ! -x "$root/var/lang/bin/python3" ]; then
  log "building a Debian $suite root file system in $root"
  rm -rf "$root"
  mkdir -p "$root"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$suite" "$root" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >/dev/null
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  chroot "$root" /usr/bin/python3 -m venv /var/lang
fi
have=$(chroot "$root" /var/lang/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$have" = "$pyver" ] || die "$root has Python $have, not $pyver: remove it (or set LAMBDA_ROOTFS) and run again"
# The host's CA bundle too, so pip inside trusts what the host trusts (a proxy's certificate, say).
[ -f /etc/ssl/certs/ca-certificates.crt ] && cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
# pip runs with this script's environment: PIP_INDEX_URL, proxies and the like apply.
chroot "$root" /var/lang/bin/python3 -c 'import awslambdaric, boto3' 2>/dev/null ||
  chroot "$root" /var/lang/bin/pip install -q --disable-pip-version-check awslambdaric boto3

mkdir -p "$root/var/runtime" "$root/var/task" "$root/opt"
cat >"$root/var/runtime/bootstrap" <<EOF
#!/bin/sh
# Lambda layers unpack under /opt; a Python layer's packages live in /opt/python.
export PYTHONPATH="/var/runtime:/var/task:/opt/python:/opt/python/lib/python$pyver/site-packages:\${PYTHONPATH:-}"
cd /var/task
exec /var/lang/bin/python3 -m awslambdaric "\$_HANDLER"
EOF
chmod +x "$root/var/runtime/bootstrap"

log "importing $tag"
tar -C "$root" -c . | docker import \
  --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
  --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin' \
  --change 'WORKDIR /var/task' \
  --change 'ENTRYPOINT ["/var/rapid/aws-lambda-rie"]' \
  - "$tag" >/dev/null
docker tag "$tag" "$tag-$arch"
log "done: $tag (and $tag-$arch); sam local finds it with --skip-pull-image (samconfig.toml sets it)"
