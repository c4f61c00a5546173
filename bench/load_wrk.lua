-- One page under load, for `python -m bench load` (bench/load.py); run by wrk:
--   wrk -t T -c C -d Ds --timeout Ts -s bench/load_wrk.lua http://127.0.0.1:PORT/path
-- Read from the environment:
--   LOAD_COOKIE        the Cookie header (session and csrftoken)
--   LOAD_EXPECT        the status a successful answer has (200, or 302 for a form POST)
--   LOAD_METHOD        GET (default) or POST
--   LOAD_BODY          the POST body (urlencoded); FORM_TOKEN in it is replaced by a fresh
--                      UUID per request (the form's one-time token: the database refuses a
--                      repeat)
--   LOAD_TOKEN_PREFIX  8-4 hex digits, chosen at random for each wrk process, so the UUIDs
--                      of two wrk processes (and of two runs) never meet
-- At the end, one line of JSON: requests, duration, errors (sockets, and every answer whose
-- status is not LOAD_EXPECT), throughput and latency percentiles.

local cookie = os.getenv("LOAD_COOKIE") or ""
local expect = tonumber(os.getenv("LOAD_EXPECT") or "200")
local method = os.getenv("LOAD_METHOD") or "GET"
local body = os.getenv("LOAD_BODY") or ""
local prefix = os.getenv("LOAD_TOKEN_PREFIX") or "00000000-0000"

wrk.method = method
wrk.headers["Cookie"] = cookie

local threads = {}

function setup(thread)
   thread:set("thread_number", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   -- Globals of this thread's Lua state: done() reads them with thread:get().
   unexpected = 0
   unexpected_status = 0
   sent = 0
end

if method == "POST" then
   local head, tail = body:match("^(.-)FORM_TOKEN(.*)$")
   if head == nil then
      error("LOAD_BODY has no FORM_TOKEN to replace")
   end
   wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

   function request()
      sent = sent + 1
      -- prefix (random per process) - thread - counter: unique without a random source.
      local token = string.format("%s-4%03x-8000-%012x", prefix, thread_number % 4096, sent)
      return wrk.format(nil, nil, nil, head .. token .. tail)
   end
end

function response(status, headers, response_body)
   if status ~= expect then
      unexpected = unexpected + 1
      unexpected_status = status
   end
end

function done(summary, latency, requests)
   local unexpected_total, last_status = 0, 0
   for _, thread in ipairs(threads) do
      unexpected_total = unexpected_total + thread:get("unexpected")
      local status = thread:get("unexpected_status")
      if status ~= 0 then
         last_status = status
      end
   end
   local errors = summary.errors
   local sockets = errors.connect + errors.read + errors.write + errors.timeout
   local seconds = summary.duration / 1e6
   io.write(string.format(
      '{"requests": %d, "duration_s": %.3f, "throughput": %.2f, "errors": %d, '
         .. '"unexpected_status": %d, "an_unexpected_status": %d, "socket_errors": %d, '
         .. '"timeouts": %d, "non_2xx_3xx": %d, "bytes": %d, "latency_ms": {"p50": %.2f, '
         .. '"p90": %.2f, "p95": %.2f, "p99": %.2f, "mean": %.2f, "max": %.2f}}\n',
      summary.requests, seconds, summary.requests / seconds, unexpected_total + sockets,
      unexpected_total, last_status, sockets, errors.timeout, errors.status, summary.bytes,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.mean / 1000,
      latency.max / 1000))
end
