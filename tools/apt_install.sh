# Sourced by ./bazelw and tools/run_bench: installs missing Debian packages.
#   apt_install_missing NAME PKG...   (NAME prefixes the messages)
# As root with apt-get: apt-get update + install; returns apt-get's status.
# Otherwise prints the command to run and returns 1.
apt_install_missing() {
  local who="$1"
  shift
  [[ $# -eq 0 ]] && return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    echo "$who: installing missing packages: $*" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
  else
    echo "$who: missing Debian packages: $*" >&2
    echo "$who: install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y $*" >&2
    return 1
  fi
}
