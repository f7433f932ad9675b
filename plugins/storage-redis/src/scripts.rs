//! The Lua scripts: one per storage operation, each run atomically on the master of the shard's
//! hash slot.
//!
//! Redis runs a script without interleaving other commands, so a script is the transaction of
//! a batch. It does not roll back, though: a script that failed half-way would leave half a
//! batch. So every writing script decides every item first, reading only, and writes in a
//! second pass that cannot fail on the data (only on the server itself, e.g. out of memory,
//! which Redis checks before a writing script starts).
//!
//! Each script gets the shard's key prefix in `ARGV[1]` and builds its key names from it; the
//! one key it declares, `KEYS[1]` (the shard's `meta` hash), routes it to the right node. All of
//! a shard's keys share one hash slot, so Redis Cluster lets a script reach them all.
//!
//! Writing scripts take a token naming the call (`ARGV[2]`) and keep their reply under it for
//! [`REPLAY_SECONDS`]; a retry of the call then gets the same reply without running again.
//!
//! Errors a script raises on purpose start with a word the client maps to a code: `TAKEN` (an
//! id already holds another entry: `Conflict`) and `DAMAGED` (stored bytes that do not parse:
//! `Storage`).

use redis::Script;

/// What every script shares: reading the four header fields at the front of an encoded entry
/// (see `registry_codec::entry`), and the names of the field indexes.
const COMMON: &str = r#"
local P = ARGV[1]
local FIELDS = {'scope', 'type', 'variant', 'status'}

local function varint(s, pos)
  local n, scale = 0, 1
  while true do
    local b = string.byte(s, pos)
    if not b then return nil end
    pos = pos + 1
    if b < 128 then return n + b * scale, pos end
    n = n + (b - 128) * scale
    scale = scale * 128
  end
end

-- The scope, type, variant and status of an encoded entry (formats 1 to 5), or nil if it does
-- not parse.
local function fields(s)
  local format = string.byte(s, 1)
  if format == nil or format < 1 or format > 5 then return nil end
  local out, pos = {}, 2
  for i = 1, 4 do
    local len
    len, pos = varint(s, pos)
    if not len or pos + len - 1 > string.len(s) then return nil end
    out[i] = string.sub(s, pos, pos + len - 1)
    pos = pos + len
  end
  return out
end

local function fields_or_fail(s, member)
  local f = fields(s)
  if not f then
    error({err = 'DAMAGED entry ' .. member .. ' holds bytes that do not parse'})
  end
  return f
end

local function index_key(i, value)
  return P .. 'ix:' .. FIELDS[i] .. ':' .. value
end

-- Adds a new entry (its latest revision `latest`) to the id set and the field indexes.
local function index_new(member, latest)
  redis.call('ZADD', P .. 'ids', 0, member)
  local f = fields_or_fail(latest, member)
  for i = 1, 4 do redis.call('ZADD', index_key(i, f[i]), 0, member) end
end

-- Writing scripts get a token in ARGV[2], the same for every try of one call. The reply of a
-- call that ran is kept under `done:<token>` for a while, so a retry after a lost reply gets the
-- same answer instead of running again (which would, e.g., report its own entries as taken).
local function replay()
  local done = redis.call('GET', P .. 'done:' .. ARGV[2])
  if done then return cmsgpack.unpack(done) end
  return nil
end

local function remember(out)
  redis.call('SET', P .. 'done:' .. ARGV[2], cmsgpack.pack(out), 'EX', REPLAY_SECONDS)
  return out
end

-- The larger of two counts (decimal strings without leading zeros; `a` may be nil), compared
-- as strings, length first, so numbers past 2^53 compare exactly.
local function bigger(a, b)
  if (not a) or string.len(a) < string.len(b)
      or (string.len(a) == string.len(b) and a < b) then
    return b
  end
  return a
end

-- Raises the sequence of `prefix` to the count `c` if it is below.
local function raise(prefix, c)
  if c == '0' then return end
  local cur = redis.call('HGET', P .. 'seq', prefix)
  if bigger(cur, c) ~= cur then
    redis.call('HSET', P .. 'seq', prefix, c)
  end
end
"#;

/// Reads the shard count the shard recorded: ARGV: prefix, shards (0 to learn it), create
/// (`1` or `0`), then (name, value) pairs of metadata. A shard not created yet is created when
/// `create` is `1`: its count and the metadata (as `m:<name>` fields) in one script, so it never
/// exists without them; otherwise the reply is nil. Returns the recorded count.
const LAYOUT: &str = r#"
local recorded = redis.call('HGET', KEYS[1], 'shards')
if recorded then return {recorded, redis.call('HGET', KEYS[1], 'format') or '1'} end
if ARGV[3] ~= '1' then return false end
redis.call('HSET', KEYS[1], 'shards', ARGV[2], 'format', ARGV[4])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], 'm:' .. ARGV[i], ARGV[i + 1])
end
return {ARGV[2], ARGV[4]}
"#;

/// Sets registry metadata: ARGV: prefix, then (name, value) pairs; an empty value removes the
/// name. One script, so the changes are applied together.
const SET_META: &str = r#"
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], 'm:' .. ARGV[i])
  else
    redis.call('HSET', KEYS[1], 'm:' .. ARGV[i], ARGV[i + 1])
  end
end
return 1
"#;

/// Allocates: ARGV: prefix, token, then (id prefix, how many) pairs. Returns the new count of
/// each.
const ALLOCATE: &str = r#"
local again = replay()
if again then return again end
local out = {}
for i = 3, #ARGV, 2 do
  out[#out + 1] = redis.call('HINCRBY', P .. 'seq', ARGV[i], tonumber(ARGV[i + 1]))
end
return remember(out)
"#;

/// Places (shard 0 of a dense registry): ARGV: prefix, token, then per id (id prefix, number,
/// location block, byte offset, the two bytes of the shard). Raises each prefix's sequence to
/// its numbers and writes each location into its block (`loc:<id prefix>:<block>`, a string
/// of two bytes per number, grown by SETRANGE with zero bytes: shard 0).
const PLACE: &str = r#"
local again = replay()
if again then return again end
local highest = {}
for b = 3, #ARGV, 5 do
  highest[ARGV[b]] = bigger(highest[ARGV[b]], ARGV[b + 1])
end
for b = 3, #ARGV, 5 do
  redis.call('SETRANGE', P .. 'loc:' .. ARGV[b] .. ':' .. ARGV[b + 2], tonumber(ARGV[b + 3]), ARGV[b + 4])
end
for prefix, c in pairs(highest) do raise(prefix, c) end
return remember(1)
"#;

/// Sequences: ARGV: prefix, then per prefix to raise (id prefix, count). Raises each and
/// returns every (id prefix, count) the shard's sequences hold.
const SEQUENCES: &str = r#"
for b = 2, #ARGV, 2 do raise(ARGV[b], ARGV[b + 1]) end
return redis.call('HGETALL', P .. 'seq')
"#;

/// Purges: ARGV: prefix, member, list index, the bytes stored there, the bytes to store. Returns
/// 1 when replaced, -1 when there is no such revision, 0 when it holds other bytes (another host
/// changed it meanwhile).
const PURGE: &str = r#"
local key = P .. 'e:' .. ARGV[2]
local at = tonumber(ARGV[3])
local old = redis.call('LINDEX', key, at)
if not old then return -1 end
if old ~= ARGV[4] then return 0 end
redis.call('LSET', key, at, ARGV[5])
return 1
"#;

/// Locates (shard 0 of a dense registry): ARGV: prefix, then per id (id prefix, location block,
/// byte offset). Returns the two bytes recorded for each (empty past the block's end).
const LOCATE: &str = r#"
local out = {}
for b = 2, #ARGV, 3 do
  local at = tonumber(ARGV[b + 2])
  out[#out + 1] = redis.call('GETRANGE', P .. 'loc:' .. ARGV[b] .. ':' .. ARGV[b + 1], at, at + 1)
end
return out
"#;

/// Clears a shard's keys, `budget` entries per call (`registry migrate`: the copy an interrupted
/// run left, or the format 1 keys once the copy is in use): ARGV: prefix, budget. Deletes each
/// entry's list, the index sets its latest revision is in and its member, then, once no member
/// is left, the shard's hashes. Returns 1 while members remain, else 0.
const CLEAN: &str = r#"
local budget = tonumber(ARGV[2])
local members = redis.call('ZRANGE', P .. 'ids', 0, budget - 1)
for _, m in ipairs(members) do
  local latest = redis.call('LINDEX', P .. 'e:' .. m, -1)
  if latest then
    local f = fields(latest)
    if f then for i = 1, 4 do redis.call('DEL', index_key(i, f[i])) end end
  end
  redis.call('DEL', P .. 'e:' .. m)
  redis.call('ZREM', P .. 'ids', m)
end
if #members < budget then
  redis.call('DEL', P .. 'meta', P .. 'seq', P .. 'fp', P .. 'dicts')
  return 0
end
return 1
"#;

/// Rebuilds the indexes into staging keys (`rb:ids`, `rb:fp`, `rb:ix:<field>:<value>`):
/// ARGV: prefix, then per entry (member, fingerprint). Returns the staged index keys written.
const REINDEX_ADD: &str = r#"
local staged = {}
for i = 2, #ARGV, 2 do
  local member, fp = ARGV[i], ARGV[i + 1]
  local latest = redis.call('LINDEX', P .. 'e:' .. member, -1)
  if latest then
    local f = fields_or_fail(latest, member)
    redis.call('ZADD', P .. 'rb:ids', 0, member)
    redis.call('HSET', P .. 'rb:fp', fp, member)
    for j = 1, 4 do
      local key = P .. 'rb:ix:' .. FIELDS[j] .. ':' .. f[j]
      redis.call('ZADD', key, 0, member)
      staged[key] = true
    end
  end
end
local out = {}
for key in pairs(staged) do out[#out + 1] = key end
return out
"#;

/// Puts the staged indexes in place of the old ones, in one script: ARGV: prefix, how many old
/// index keys, the old index keys, then the staged index keys, then (id prefix, count) pairs
/// after a `--` to raise the sequences. Deletes everything that is not staged.
const REINDEX_SWAP: &str = r#"
local n = tonumber(ARGV[2])
redis.call('DEL', P .. 'ids', P .. 'fp')
for i = 3, 2 + n do redis.call('DEL', ARGV[i]) end
local i = 3 + n
while i <= #ARGV and ARGV[i] ~= '--' do
  local staged = ARGV[i]
  local final = P .. string.sub(staged, string.len(P .. 'rb:') + 1)
  redis.call('RENAME', staged, final)
  i = i + 1
end
if redis.call('EXISTS', P .. 'rb:ids') == 1 then redis.call('RENAME', P .. 'rb:ids', P .. 'ids') end
if redis.call('EXISTS', P .. 'rb:fp') == 1 then redis.call('RENAME', P .. 'rb:fp', P .. 'fp') end
i = i + 1
while i + 1 <= #ARGV do
  raise(ARGV[i], ARGV[i + 1])
  i = i + 2
end
return 1
"#;

/// Reads whole histories: ARGV: prefix, then members. Returns every revision of each, oldest
/// first.
const HISTORIES: &str = r#"
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('LRANGE', P .. 'e:' .. ARGV[i], 0, -1)
end
return out
"#;

/// Inserts: ARGV: prefix, token, then per entry (member, fingerprint, id prefix, count, bytes).
/// Returns per entry 1 (created) or the latest bytes of the entry holding the fingerprint.
const INSERT: &str = r#"
local again = replay()
if again then return again end
local out, fresh, ids, create = {}, {}, {}, {}
for b = 3, #ARGV, 5 do
  local member, fp, bytes = ARGV[b], ARGV[b + 1], ARGV[b + 4]
  local earlier = fresh[fp]
  if earlier then
    out[#out + 1] = ARGV[earlier + 4]
  else
    local known = redis.call('HGET', P .. 'fp', fp)
    if known then
      local latest = redis.call('LINDEX', P .. 'e:' .. known, -1)
      if not latest then
        return redis.error_reply('DAMAGED a fingerprint names entry ' .. known .. ' but the entry is missing')
      end
      out[#out + 1] = latest
    elseif ids[member] or redis.call('EXISTS', P .. 'e:' .. member) == 1 then
      return redis.error_reply('TAKEN ' .. member)
    else
      fresh[fp] = b
      ids[member] = true
      create[#create + 1] = b
      out[#out + 1] = 1
    end
  end
end
for _, b in ipairs(create) do
  local member, fp, bytes = ARGV[b], ARGV[b + 1], ARGV[b + 4]
  fields_or_fail(bytes, member)
end
local highest = {}
for _, b in ipairs(create) do
  local member, fp, bytes = ARGV[b], ARGV[b + 1], ARGV[b + 4]
  redis.call('RPUSH', P .. 'e:' .. member, bytes)
  redis.call('HSET', P .. 'fp', fp, member)
  index_new(member, bytes)
  highest[ARGV[b + 2]] = bigger(highest[ARGV[b + 2]], ARGV[b + 3])
end
for prefix, c in pairs(highest) do raise(prefix, c) end
return remember(out)
"#;

/// Updates: ARGV: prefix, token, then per entry (member, revision, bytes). Returns per entry 0 (stored),
/// -1 (no such entry) or the stored revision it does not follow (a conflict).
const UPDATE: &str = r#"
local again = replay()
if again then return again end
local out, state, writes = {}, {}, {}
for b = 3, #ARGV, 3 do
  local member, rev, bytes = ARGV[b], tonumber(ARGV[b + 1]), ARGV[b + 2]
  local s = state[member]
  if not s then
    local key = P .. 'e:' .. member
    local len = redis.call('LLEN', key)
    s = {len, false}
    if len > 0 then s[2] = redis.call('LINDEX', key, -1) end
    state[member] = s
  end
  if s[1] == 0 then
    out[#out + 1] = -1
  elseif s[1] + 1 == rev then
    fields_or_fail(s[2], member)
    fields_or_fail(bytes, member)
    writes[#writes + 1] = {member, s[2], bytes}
    s[1], s[2] = rev, bytes
    out[#out + 1] = 0
  else
    out[#out + 1] = s[1]
  end
end
for _, w in ipairs(writes) do
  local member, old, new = w[1], fields(w[2]), fields(w[3])
  redis.call('RPUSH', P .. 'e:' .. member, w[3])
  for i = 1, 4 do
    if old[i] ~= new[i] then
      redis.call('ZREM', index_key(i, old[i]), member)
      redis.call('ZADD', index_key(i, new[i]), 0, member)
    end
  end
end
return remember(out)
"#;

/// Restores: ARGV: prefix, token, then per history (member, fingerprint, id prefix, count, n, then n
/// revisions' bytes). Returns per history 1 (created), the latest stored bytes when the id is
/// taken, or `{member}` naming the entry that holds the fingerprint.
const RESTORE: &str = r#"
local again = replay()
if again then return again end
local out, create = {}, {}
local b = 3
while b <= #ARGV do
  local member, fp, n = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 4])
  local key = P .. 'e:' .. member
  local stored = redis.call('LINDEX', key, -1)
  if stored then
    out[#out + 1] = stored
  else
    local known = redis.call('HGET', P .. 'fp', fp)
    if known then
      out[#out + 1] = {known}
    else
      fields_or_fail(ARGV[b + 4 + n], member)
      create[#create + 1] = b
      out[#out + 1] = 1
    end
  end
  b = b + 5 + n
end
for _, b in ipairs(create) do
  local member, fp, n = ARGV[b], ARGV[b + 1], tonumber(ARGV[b + 4])
  for i = 1, n do redis.call('RPUSH', P .. 'e:' .. member, ARGV[b + 4 + i]) end
  redis.call('HSET', P .. 'fp', fp, member)
  index_new(member, ARGV[b + 4 + n])
  raise(ARGV[b + 2], ARGV[b + 3])
end
return remember(out)
"#;

/// Gets: ARGV: prefix, then members. Returns the latest bytes of each, or nil.
const GET: &str = r#"
local out = {}
for i = 2, #ARGV do
  out[#out + 1] = redis.call('LINDEX', P .. 'e:' .. ARGV[i], -1)
end
return out
"#;

/// Finds: ARGV: prefix, then fingerprints. Returns the latest bytes of the entry registered
/// with each, or nil.
const FIND: &str = r#"
local out = {}
for i = 2, #ARGV do
  local known = redis.call('HGET', P .. 'fp', ARGV[i])
  if known then
    local latest = redis.call('LINDEX', P .. 'e:' .. known, -1)
    if not latest then
      return redis.error_reply('DAMAGED a fingerprint names entry ' .. known .. ' but the entry is missing')
    end
    out[#out + 1] = latest
  else
    out[#out + 1] = false
  end
end
return out
"#;

/// Lists: ARGV: prefix, after (a member, or empty), limit, budget, then (field number 1-4,
/// value) pairs. Walks the smallest of the filters' indexes (or the id set) in member order
/// after `after`, keeps the members every other filter's index holds, and stops at `limit`
/// matches or after `budget` members looked at. Returns the member to continue after (empty
/// when the walk reached the end), then the latest bytes of each match.
const LIST: &str = r#"
local after, limit, budget = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local sets = {}
for i = 5, #ARGV, 2 do sets[#sets + 1] = index_key(tonumber(ARGV[i]), ARGV[i + 1]) end
local base, best = P .. 'ids', nil
for i, key in ipairs(sets) do
  local n = redis.call('ZCARD', key)
  if not best or n < best then base, best = key, n end
end
local found, looked, last = {}, 0, ''
local start = '-'
if after ~= '' then start = '(' .. after end
while #found < limit and looked < budget do
  local chunk = redis.call('ZRANGEBYLEX', base, start, '+', 'LIMIT', 0, math.min(256, budget - looked))
  if #chunk == 0 then last = ''; break end
  for _, member in ipairs(chunk) do
    looked = looked + 1
    last = member
    local keep = true
    for _, key in ipairs(sets) do
      if key ~= base and not redis.call('ZSCORE', key, member) then keep = false; break end
    end
    if keep then
      local latest = redis.call('LINDEX', P .. 'e:' .. member, -1)
      if not latest then
        return redis.error_reply('DAMAGED the index lists entry ' .. member .. ' but the entry is missing')
      end
      found[#found + 1] = latest
      if #found >= limit then break end
    end
  end
  start = '(' .. last
end
if looked >= budget or #found >= limit then
  -- Stopped early: the caller continues after the last member looked at.
else
  last = ''
end
local out = {last}
for _, bytes in ipairs(found) do out[#out + 1] = bytes end
return out
"#;

/// How long the reply of a writing call is kept for its retries, in seconds: far longer than
/// every retry of a call can take.
pub(crate) const REPLAY_SECONDS: u32 = 300;

/// The compiled scripts (their SHA1s are computed once).
pub(crate) struct Scripts {
    pub(crate) layout: Script,
    pub(crate) set_meta: Script,
    pub(crate) allocate: Script,
    pub(crate) sequences: Script,
    pub(crate) purge: Script,
    pub(crate) place: Script,
    pub(crate) locate: Script,
    pub(crate) clean: Script,
    pub(crate) histories: Script,
    pub(crate) reindex_add: Script,
    pub(crate) reindex_swap: Script,
    pub(crate) insert: Script,
    pub(crate) update: Script,
    pub(crate) restore: Script,
    pub(crate) get: Script,
    pub(crate) find: Script,
    pub(crate) list: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        let with_common = |body: &str| {
            Script::new(&format!(
                "local REPLAY_SECONDS = {REPLAY_SECONDS}\n{COMMON}\n{body}"
            ))
        };
        Scripts {
            layout: with_common(LAYOUT),
            set_meta: with_common(SET_META),
            allocate: with_common(ALLOCATE),
            sequences: with_common(SEQUENCES),
            purge: with_common(PURGE),
            place: with_common(PLACE),
            locate: with_common(LOCATE),
            clean: with_common(CLEAN),
            histories: with_common(HISTORIES),
            reindex_add: with_common(REINDEX_ADD),
            reindex_swap: with_common(REINDEX_SWAP),
            insert: with_common(INSERT),
            update: with_common(UPDATE),
            restore: with_common(RESTORE),
            get: with_common(GET),
            find: with_common(FIND),
            list: with_common(LIST),
        }
    }
}
