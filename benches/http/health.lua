-- wrk script: GET /health, the floor of this machine and load generator
-- (no model work, no body): what /predict's and /explain's latency is
-- measured against.
dofile("benches/http/report.lua")
