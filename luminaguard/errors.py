"""Every exception LuminaGuard defines: the layer raising it, what users see, the exit code.

Exit codes (``ui.exit_codes``; 2 and 3 are a run's outcome, ``scheduler.outcomes``)::

    0 done   1 invalid input   2 a step failed or was denied   3 halted awaiting approval
    4 internal error (a bug)   130 interrupted (Ctrl-C)

``ui.exit_codes.guarded`` is the one place an exception becomes an exit code: a
``ConfigError`` is rendered by ``ui.diagnostics.render_config_error`` (FILE:LINE:COL,
the source line, a caret), any other ``LuminaGuardError`` as ``error: MESSAGE``; both
exit 1. ``KeyboardInterrupt`` exits 130; anything else is a bug: a traceback, exit 4.
An error under a step does not end the run: ``scheduler.runner`` records the step
``failed`` with the message, and the run ends 2 when nothing else can progress.

Reported to users (``Name  module`` under ``luminaguard/``; who raises it; what it
becomes)::

    LuminaGuardError  errors.py                                               exit 1
     │   root of every error the tool means to report
     ├── ConfigError  config/diagnostics.py                                   exit 1
     │     raised: compiler (compile.py), ui/commands lock, image, pool: problems in
     │             the user's YAML, each a Diagnostic with a location
     │     becomes: ui/diagnostics.render_config_error; nothing was compiled
     ├── UsageError  errors.py                                                exit 1
     │   │ raised: ui/commands; compiler (compile.py, lock.py); scheduler (store,
     │   │         audited, audit_key, private, redact); hypervisor/registry.py;
     │   │         server/tokens.py: a command that cannot be carried out (an unknown
     │   │         workload, run or backend, a bad option, a lock file or audit log
     │   │         that is not valid, a token name taken)
     │   │ becomes: error: MESSAGE; through the API a 409 (or 422)
     │   ├── NotAllowed  scheduler/decisions.py                                 exit 1
     │   │     raised: decisions (and retries): the person is not among the request's
     │   │             approvers, or started the run and may not approve it
     │   │     becomes: error: MESSAGE, nothing recorded; through the API a 403
     │   └── NotRetryable  scheduler/retries.py                                 exit 1
     │         raised: retries: the step did not fail, was denied, or a person
     │                 declined to run it again
     │         becomes: error: MESSAGE, nothing recorded; through the API a 409
     ├── BackendError  hypervisor/base.py                                     exit 2 or 1
     │   │ raised: hypervisor (linux/users.py, linux/work_disk.py, the backends): a
     │   │         backend cannot provide what an agent asks for
     │   │ becomes: under a step, the step failed (scheduler/runner.py; StepError in
     │   │         scheduler/tools.py): exit 2; outside a run (lock, pool, image):
     │   │         error: MESSAGE, exit 1
     │   ├── GuestError  hypervisor/vm/guest/client.py                        exit 2 or 1
     │   │     raised: the guest agent's client: the agent unreachable, gone, or
     │   │             answering an error (ProtocolError among the causes)
     │   │     becomes: vm/backend.py exec: the VM killed, a failed ExecResult;
     │   │             elsewhere as BackendError
     │   ├── BootTimeout  hypervisor/vm/waiting.py                            exit 2 or 1
     │   │     raised: vm/waiting.py: the VMM still runs but its socket or agent did
     │   │             not answer by the deadline (a loaded machine)
     │   │     becomes: vm/backend.py and vm/pool.py: the boot or restore is tried
     │   │             again (logged); after the last attempt, as BackendError
     │   └── FirecrackerError  hypervisor/vm/firecracker/api.py               exit 2 or 1
     │       │ raised: the Firecracker API client: a request refused or unanswered
     │       │ becomes: as BackendError: under a step, the step failed
     │       └── Unreachable  hypervisor/vm/firecracker/api.py
     │             raised: nothing listens on the API socket yet (the request was not
     │                     sent)
     │             becomes: vm/firecracker/backend.py: tried again until the deadline
     ├── TransportError  transport/base.py                                    exit 2 or 1
     │     raised: transport (mcp_session.py, mcp_http.py): an MCP server that does
     │             not start, answer or keep its session
     │     becomes: scheduler/tools.py: the step failed (StepError when connecting),
     │             exit 2; ui/commands/lock.py: UsageError with secrets redacted
     ├── SourceError  gitops/snapshot.py                                      exit 1
     │     raised: gitops (source, folder, gitsource, git, trees): a GitOps source
     │             that cannot be fetched (git missing, a clone or fetch failing, a
     │             branch or revision not found, a timeout, a refused URL)
     │     becomes: error: MESSAGE, credentials redacted; the last snapshot stays
     ├── StepError  scheduler/templates.py                                    exit 2
     │     raised: scheduler (templates, secrets, tools, runner): this step cannot
     │             run (arguments or when: not renderable, a secret unset, no tool)
     │     becomes: scheduler/runner.py: the step failed with the message
     ├── DiskFull  space.py                                                   exit 1
     │     raised: scheduler (store, opening, via space.reported), hypervisor/linux/
     │             work_disk.py: the state folder's file system (or a work disk's) has
     │             no space left (SQLITE_FULL, ENOSPC)
     │     becomes: error: no space left on the file system of the state folder DIR
     │             (N KiB free); the write was rolled back whole, a run's step is left
     │             as after a crash: free space, then resume. Read-only commands
     │             (status, approvals, audit) still work on the full disk
     ├── LeaseHeld  scheduler/lease.py                                        exit 1
     │     raised: scheduler/store.py lease: another live process drives the run
     │     becomes: error: run R is being driven by PID P
     ├── LeaseLost  scheduler/lease.py                                        exit 1
     │     raised: scheduler/lease.py check_token: the lease changed hands
     │     becomes: error: MESSAGE; this process stops driving the run
     ├── TokenFileError  server/tokens.py                                     exit 1
     │     raised: server/tokens.py: tokens.json is not private (its mode not 0600,
     │             another owner, a symlink) or not a list of tokens
     │     becomes: error: MESSAGE naming the file; no token is accepted from it
     ├── ApiError  server/http.py                                         HTTP 4xx
     │     raised: server (http, api_runs, api_approvals): a request the API refuses
     │             (a field not valid, no such run, decided already, body too large)
     │     becomes: server/http.py route: a JSON error body with its status code
     ├── RemoteError  ui/remote.py                                            exit 1
     │     raised: ui/remote.py, the client of `run --server`: the server refused a
     │             call (its status and message) or could not be reached (status 0)
     │     becomes: error: the server refused (HTTP 401): MESSAGE; the run, if
     │             submitted, goes on on the server
     └── StateError  scheduler/states.py                                    exit 1
         │ raised: scheduler/guards.py, inside the store's write transaction: a move
         │         the state tables do not allow (a step, run or approval request
         │         moved by another process meanwhile), or a stored state that is none
         │ becomes: error: MESSAGE naming the run, the step, from and to; nothing
         │         was written. Under a drive it ends the drive; resume goes on
         └── AlreadyApproved  scheduler/store.py                            exit 1
               raised: store.vote_approval, inside its transaction: the name approved
                       this action already (a name counts once)
               becomes: error: MESSAGE, nothing recorded; through the API a 409

Internal: translated before they reach a user, no exit code of their own::

    Exception
     ├── TemplateProblem  config/render.py
     │     raised: config/render.py: a template that cannot be rendered
     │     becomes: compiler/steps.py: a Diagnostic, so ConfigError (exit 1); at run
     │             time scheduler/templates.py: StepError (exit 2)
     ├── CannotDecide  shell/words.py
     │     raised: shell (words, parse, unwrap): what only the run could tell
     │     becomes: shell/parse.py parse_command: ParsedCommand.undecidable; the
     │             command is Red (policy/shell_verdict.py), so it awaits approval (3)
     ├── Unreadable  hostile_files.py
     │   │ raised: hostile_files.read_beneath: a guest file the host will not read
     │   │ becomes: scheduler/cards.py: the approval card says why; vm/machine.py:
     │   │         the guest's log is left out of the error
     │   ├── Missing  hostile_files.py     nothing there: the card diffs an empty file
     │   └── TooLarge  hostile_files.py    over the limit: not read
     ├── ProtocolError  hypervisor/vm/guest/protocol.py
     │     raised: the guest protocol: a frame too large, or not a JSON object
     │     becomes: vm/guest/client.py: GuestError
     ├── BuildError  hypervisor/sandbox/native.py
     │     raised: native.build: the compiled zygote not built (no cc, cc failed)
     │     becomes: native.program: None, so the Python zygote serves; `make zygote`
     │             (python -m ...sandbox.native) prints why and exits 1
     ├── SetupError  hypervisor/sandbox/helper.py
     │     raised: the sandbox helper, in its own process: the sandbox not set up
     │     becomes: "luminaguard-sandbox: MESSAGE" on stderr, exit 125
     │             (process.SETUP_FAILED); ExecResult.failure: the step failed (2)
     ├── _NotSent  transport/mcp_http.py
     │     raised: mcp_http.py: an endpoint that cannot be reached, or kept failing
     │     becomes: the next endpoint; when none is left, another round after a
     │             backoff, within the retry window; then TransportError
     ├── _Retryable  transport/mcp_http.py
     │     raised: mcp_http.py: a timeout, HTTP 408, 429 or 5xx, no answer, a session
     │             refused again right after it was opened
     │     becomes: a retry if the call is idempotent, else TransportError; with the
     │             retries spent, _NotSent
     ├── _StaleSession  transport/mcp_http.py
     │     raised: mcp_http.py: HTTP 404 (or a 400 naming the session) for our session:
     │             the server restarted and forgot it
     │     becomes: a new session (initialize) and the request sent once more, for
     │             any request (the server refused it); a second time, _Retryable
     ├── TooManyQuestions  scheduler/asking.py
     │     raised: asking.py: a server asks more questions than may wait or be asked
     │     becomes: transport/questions.py: an error answered to the server, audited
     ├── _Refusal  config/yamlsource.py
     │     raised: yamlsource.py, as events are read: a collection nested too deep,
     │             aliases expanding a file too far
     │     becomes: parse_yaml: the file's one Diagnostic, none of its documents
     └── ValueError
          ├── FormError  transport/forms.py
          │     raised: forms.py: a server's form this client does not show, or an
          │             answer the form refuses
          │     becomes: an error answered to the server (audited); through the API a 422
          └── PlacementError  shell/template.py
                raised: shell/template.py: a template value a run: command cannot
                        take as one word
                becomes: config/render.py: TemplateProblem

    jinja2.exceptions.SecurityError
     └── _TooLarge  config/render.py
           raised: the template sandbox (config/render.py): a value too large to build
           becomes: config/render.py: TemplateProblem

``tests/test_errors.py`` fails when a class defined under ``luminaguard/`` is missing here.
"""

from __future__ import annotations


class LuminaGuardError(Exception):
    """Root of the errors LuminaGuard reports to its users."""


class UsageError(LuminaGuardError):
    """A command line that cannot be carried out (unknown workload, bad option value)."""
