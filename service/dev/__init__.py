"""`fleet dev`: the whole stack on a laptop, with a demo workload and a live view.

Modules, one job each: `ports` (taken ports move to free ones), `processes` (children in
their own process groups, stopped so none survives), `stubs` (local SMTP sink and external
API the example tasks talk to), `stack` (Redis, worker, beat, exporter, Flower,
Prometheus), `workload` (every routing/retry/DLQ path of the README), `observe` (figures
read from the exporter, the worker's /metrics, Prometheus and the DLQ store), `view` (live
table or plain lines), `runner` (the loop, signals, the JSON summary)."""
