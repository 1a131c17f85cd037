#!/usr/bin/env bash
# Option parsing for recipes. Source it after declaring the options between two marker lines:
#
#   # --- options ---
#   stage=1          # first stage to run
#   conf=conf/x.yaml # training config
#   # --- end options ---
#   . "$(dirname "$0")/../lib/parse_options.sh"
#
# Then `--stage 3`, `--stage=3` and `--stop-stage 5` (dashes become underscores) set those variables;
# an option that is not declared, a missing value or a positional argument is an error (exit 2), and
# `--help` lists every declared option with its default and comment.
# Options named in `path_opts` (e.g. path_opts="source conf exp") are paths: a relative path given on the
# command line is made absolute against the caller's folder, so the recipe may then `cd` to its own folder
# (where the defaults are relative to).

_opts_block() {
  sed -n '/^# --- options ---$/,/^# --- end options ---$/p' "$0" | grep -E '^[a-z_][a-z0-9_]*='
}

_opts_usage() {
  echo "usage: $0 [--option VALUE ...]"
  local line name rest
  [ -n "${help_message:-}" ] && echo "$help_message"
  echo "options (default in brackets):"
  while IFS= read -r line; do
    name=${line%%=*}
    rest=${line#*=}
    local default=${rest%%#*} comment=""
    [ "$rest" != "$default" ] && comment=${rest#*#}
    default=${default%"${default##*[![:space:]]}"}  # strip trailing blanks
    printf '  --%-16s [%s] %s\n' "${name//_/-}" "$default" "${comment# }"
  done < <(_opts_block)
}

_opts_declared() {
  _opts_block | grep -q "^$1="
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) _opts_usage; exit 0 ;;
    --*=*) _opt_name=${1%%=*}; _opt_value=${1#*=}; shift ;;
    --*)
      _opt_name=$1
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value (see --help)" >&2; exit 2; fi
      _opt_value=$2; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options look like --name VALUE; see --help)" >&2; exit 2 ;;
  esac
  _opt_var=${_opt_name#--}
  _opt_var=${_opt_var//-/_}
  if ! _opts_declared "$_opt_var"; then
    echo "$0: unknown option $_opt_name (see --help)" >&2
    exit 2
  fi
  if [[ " ${path_opts:-} " == *" $_opt_var "* ]] && [ -n "$_opt_value" ] && [[ "$_opt_value" != /* ]]; then
    _opt_value="$PWD/$_opt_value"
  fi
  printf -v "$_opt_var" '%s' "$_opt_value"
done
unset _opt_name _opt_value _opt_var
