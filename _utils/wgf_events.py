"""Events a timer job's script queues and sends to the master (issue 23).

The client expiry script and the quota saver each write an event's data into
``<dir>/events/`` (a ``.tmp`` file, then ``mv``), then send every queued event with
``salt-call event.fire_master`` and log what the master took in ``<dir>/sent``; an
event no master took waits for the next run. The sending part is the same for both
and written here once.
"""

#: The directory of the queued events, one JSON file each, in a job's state directory.
EVENTS = "events"
#: The log of the events sent, one ``<epoch> <data>`` line each.
SENT = "sent"
#: How long the script waits for ``salt-call`` (a master that does not answer).
SALT_CALL_TIMEOUT = 60


def send_lines(tag, fallback, status):
    """The shell lines that send every event queued in ``$dir/events`` as ``tag``
    (``salt-call`` on PATH, else ``fallback``, a quoted path or ``''``), log each sent
    one in ``$dir/sent`` and remove it, then ``exit status`` (also when there is no
    ``salt-call``). A ``.tmp`` file is an event still being written: it waits."""
    return [
        f'salt_call="$(command -v salt-call || echo {fallback})"',
        f'[ -n "$salt_call" ] && [ -x "$salt_call" ] || exit {status}',
        f'for event in "$dir"/{EVENTS}/*; do',
        '    [ -f "$event" ] || continue',
        '    case "$event" in *.tmp) continue ;; esac',
        f'    if timeout {SALT_CALL_TIMEOUT} "$salt_call" --out=json event.fire_master'
        f' "$(cat "$event")" {tag} 2>/dev/null | grep -q \'"local": true\'; then',
        f'        printf \'%s %s\\n\' "$(date +%s)" "$(cat "$event")" >> "$dir/{SENT}"',
        '        rm -f "$event"',
        "    fi",
        "done",
        f"exit {status}",
    ]
