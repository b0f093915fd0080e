# Sourced by scripts/demo.sh and scripts/test.sh: shared environment for the local stack.
# PostgreSQL refuses to run as root and runs as the `postgres` user; when that user cannot
# reach this checkout (a parent folder closed to others, e.g. under /root), the stack's
# state goes to a folder under /var/tmp named after the checkout.
if [ -z "${METERFLOW_STATE_DIR:-}" ] && [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1 \
   && ! runuser -u postgres -- test -x "$PWD" 2>/dev/null; then
  export METERFLOW_STATE_DIR="/var/tmp/meterflow-$(printf %s "$PWD" | md5sum | cut -c1-10)"
  mkdir -p "$METERFLOW_STATE_DIR"
  chmod 755 "$METERFLOW_STATE_DIR"
fi
