// A small, strict RFC 6902 JSON Patch applier (add, remove, replace, move, copy, test).
// Strict on purpose: a patch that names a missing path throws, so a server that emits
// patches against a state the client cannot have is caught.

function unescape(token) {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

export function parsePointer(pointer) {
  if (pointer === '') return [];
  if (typeof pointer !== 'string' || !pointer.startsWith('/')) throw new Error(`invalid JSON pointer ${JSON.stringify(pointer)}`);
  return pointer.slice(1).split('/').map(unescape);
}

function isObj(v) {
  return v !== null && typeof v === 'object';
}

function arrayIndex(arr, token, forAdd) {
  if (forAdd && token === '-') return arr.length;
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new Error(`invalid array index ${JSON.stringify(token)}`);
  const i = Number(token);
  if (i > arr.length || (!forAdd && i === arr.length)) throw new Error(`array index ${i} out of range (length ${arr.length})`);
  return i;
}

function parentOf(doc, tokens, path) {
  let cur = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isObj(cur) && Object.prototype.hasOwnProperty.call(cur, t)) cur = cur[t];
    else throw new Error(`path ${path}: segment ${JSON.stringify(t)} does not exist`);
    if (!isObj(cur)) throw new Error(`path ${path}: segment ${JSON.stringify(t)} is not a container`);
  }
  return cur;
}

function get(doc, path) {
  let cur = doc;
  for (const t of parsePointer(path)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(cur, t, false)];
    else if (isObj(cur) && Object.prototype.hasOwnProperty.call(cur, t)) cur = cur[t];
    else throw new Error(`path ${path} does not exist`);
  }
  return cur;
}

function add(doc, path, value) {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const parent = parentOf(doc, tokens, path);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, true), 0, value);
  else parent[last] = value;
  return doc;
}

function remove(doc, path) {
  const tokens = parsePointer(path);
  if (tokens.length === 0) throw new Error('cannot remove the whole document');
  const parent = parentOf(doc, tokens, path);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, false), 1);
  else {
    if (!Object.prototype.hasOwnProperty.call(parent, last)) throw new Error(`remove: path ${path} does not exist`);
    delete parent[last];
  }
  return doc;
}

function replace(doc, path, value) {
  const tokens = parsePointer(path);
  if (tokens.length === 0) return value;
  const parent = parentOf(doc, tokens, path);
  const last = tokens[tokens.length - 1];
  if (Array.isArray(parent)) parent[arrayIndex(parent, last, false)] = value;
  else {
    if (!Object.prototype.hasOwnProperty.call(parent, last)) throw new Error(`replace: path ${path} does not exist`);
    parent[last] = value;
  }
  return doc;
}

function deepEqual(a, b) {
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (isObj(v)) return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  return v;
}

/** Apply `ops` to a deep copy of `doc`; returns the new document. Throws on any invalid op. */
export function applyPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new Error('patch must be an array');
  let out = doc === undefined ? undefined : structuredClone(doc);
  for (const op of ops) {
    if (!isObj(op) || typeof op.op !== 'string' || typeof op.path !== 'string') throw new Error(`invalid op ${JSON.stringify(op)}`);
    switch (op.op) {
      case 'add':
        if (!('value' in op)) throw new Error(`add without value: ${JSON.stringify(op)}`);
        out = add(out, op.path, structuredClone(op.value));
        break;
      case 'remove':
        out = remove(out, op.path);
        break;
      case 'replace':
        if (!('value' in op)) throw new Error(`replace without value: ${JSON.stringify(op)}`);
        out = replace(out, op.path, structuredClone(op.value));
        break;
      case 'move': {
        const v = get(out, op.from);
        out = remove(out, op.from);
        out = add(out, op.path, v);
        break;
      }
      case 'copy':
        out = add(out, op.path, structuredClone(get(out, op.from)));
        break;
      case 'test':
        if (!deepEqual(get(out, op.path), op.value)) throw new Error(`test failed at ${op.path}`);
        break;
      default:
        throw new Error(`unknown op ${op.op}`);
    }
  }
  return out;
}

export { canon, deepEqual };
