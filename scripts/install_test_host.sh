#!/usr/bin/env bash
# System packages the real-parts tests use: an OpenSSH server and client (loopback sshd tests),
# user-mode QEMU + debootstrap (the emulated arm64 board), LibreOffice Calc (the spreadsheet test) and
# Chromium (the report.html test).
# Installs them when run as root and they are missing; otherwise says what is missing (those tests
# then skip, except under CI=true).
set -euo pipefail
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v update-binfmts >/dev/null 2>&1 || need+=(binfmt-support)
# LibreOffice Calc, headless: the test that summary.csv's numbers arrive in a spreadsheet as numbers
command -v soffice >/dev/null 2>&1 || need+=(libreoffice-calc-nogui)
# headless Chromium and its WebDriver: the test that report.html loads, shows and sorts in a real browser
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
# the loopback board user gets a venv built from the system python3 (like a Pi's)
[ -x /usr/bin/python3 ] || need+=(python3)
/usr/bin/python3 -c "import ensurepip, venv" >/dev/null 2>&1 || need+=(python3-venv)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "note: the SSH and arm64-board tests need: ${need[*]} (apt-get install as root); they will be skipped" >&2
fi
