"""`tuneloop demo`: the whole quality loop, on the embedded server, in simulated time.

The agent side, as an agent team would write it:

- `support`: the support agent on tuneloop's runtime, configured and traced through
  the SDK (`tuneloop.Client`), with its routing decision instrumented;
- `gate`: its eval suite (``eval_suite/``) on fixture backends, run and uploaded as CI
  would.

The simulated world, which knows nothing of the platform and reacts to the agent's
configuration only:

- `customers`: who writes, when, with which words, and how they take the answer;
- `services`: the backends the tools call (a flaky orders API, a slow policy search...);
- `llm`: the language model the agent calls (its routing errors grow with temperature).

The demo itself: `traffic` plays customers through the agent and ticks the server's
controller on the simulated clock; `acts` and `shipping` are the eight acts, which
read every figure from the server's HTTP API (`api`); `narrate` prints them; `run`
puts it all together. `server` runs the real server on a background thread.

`world`, `script` and `agent` are the earlier scripted world (runs generated without
the runtime); the recommendation analyzers' tests and benchmark use it as ground truth.
"""
