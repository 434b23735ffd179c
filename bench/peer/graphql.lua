-- One wrk script for every server: POSTs QUERY_FILE (a GraphQL document
-- with one `$id` variable, or none) to the server's GraphQL path, with an
-- id picked at random from IDS_FILE per request (one line: the same event
-- for every request). GET_PATH instead sends a plain GET (the /health/live
-- baseline). Every response is checked: 200 and a body that starts with
-- {"data": and carries no "errors"; done() prints one parsable line.
-- CONTENT_TYPE (default application/json) and EXPECT_STATUS (default 200;
-- any other status is checked alone) measure the floor of a POST: the
-- same body sent as text/plain, refused with 415 once it is read.
local query_file = os.getenv("QUERY_FILE")
local ids_file = os.getenv("IDS_FILE")
local get_path = os.getenv("GET_PATH")
local content_type = os.getenv("CONTENT_TYPE") or "application/json"
local expect_status = tonumber(os.getenv("EXPECT_STATUS") or "200")
local ids = {}
local query = nil

local function read(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  return text
end

-- A JSON string literal of `s` (the documents here hold no control bytes
-- but newlines).
local function json_string(s)
  return '"' .. s:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('\n', ' ') .. '"'
end

if query_file then
  query = json_string(read(query_file))
end
if ids_file then
  for line in io.lines(ids_file) do
    if #line > 0 then ids[#ids + 1] = line end
  end
end

-- Bodies are built once, so picking one costs a table lookup.
local bodies = {}
if query then
  if #ids == 0 then
    bodies[1] = '{"query":' .. query .. '}'
  else
    for i, id in ipairs(ids) do
      bodies[i] = '{"query":' .. query .. ',"variables":{"id":"' .. id .. '"}}'
    end
  end
end

bad = 0 -- global: done() reads it from each thread
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

-- Whole requests, formatted once per thread (wrk.format per request costs
-- the load generator more than some servers spend answering).
local requests = {}

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
  if get_path then
    requests[1] = wrk.format("GET", get_path)
  end
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", wrk.path, { ["Content-Type"] = content_type }, body)
  end
end

function request()
  return requests[math.random(#requests)]
end

function response(status, headers, body)
  if status ~= expect_status
    or (expect_status == 200 and not get_path
      and (body:sub(1, 8) ~= '{"data":' or body:find('"errors"', 1, true))) then
    bad = bad + 1
    if bad == 1 then io.stderr:write("bad response: " .. status .. " " .. body:sub(1, 300) .. "\n") end
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, t in ipairs(threads) do bad_total = bad_total + (t:get("bad") or 0) end
  local seconds = summary.duration / 1e6
  io.write(string.format("RESULT rps=%.1f p50_ms=%.2f p99_ms=%.2f requests=%d bad=%d socket_errors=%d\n",
    summary.requests / seconds, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, bad_total,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
