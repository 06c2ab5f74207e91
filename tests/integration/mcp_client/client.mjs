// Drives memgate's /mcp endpoint with the official MCP TypeScript SDK client,
// then the stateless 2026-07-28 flow (through the SDK when it speaks that
// version, otherwise with raw requests shaped by the spec). Prints one JSON
// object with what it saw; the C++ integration test checks it.
//
// Usage: node client.mjs http://127.0.0.1:PORT/mcp [bearer-token]
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import * as types from '@modelcontextprotocol/sdk/types.js';

const url = new URL(process.argv[2]);
const token = process.argv[3] || '';
const out = { sdkLatestVersion: types.LATEST_PROTOCOL_VERSION };

const headers = token ? { Authorization: `Bearer ${token}` } : {};
const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers } });
const client = new Client({ name: 'memgate-integration-test', version: '1.0.0' });
await client.connect(transport);
out.negotiatedVersion = transport.protocolVersion ?? null;
out.serverVersion = client.getServerVersion();
out.sessionId = transport.sessionId ?? null;

const list = await client.listTools();
out.tools = list.tools.map((t) => ({ name: t.name, hasOutputSchema: !!t.outputSchema }));

// The SDK validates structuredContent against each tool's outputSchema.
const search = await client.callTool({ name: 'search_knowledge_base', arguments: { query: 'fencing token', k: 3 } });
out.search = { isError: !!search.isError, structured: search.structuredContent, text: search.content?.[0]?.text };
const id = search.structuredContent?.hits?.[0]?.id;
const doc = await client.callTool({ name: 'get_document', arguments: { id } });
out.document = { isError: !!doc.isError, structured: doc.structuredContent };
const missing = await client.callTool({ name: 'get_document', arguments: { id: 'no-such-id' } });
out.missing = { isError: !!missing.isError, text: missing.content?.[0]?.text };
try {
  await client.callTool({ name: 'no_such_tool', arguments: {} });
  out.unknownTool = 'no error';
} catch (e) {
  out.unknownTool = { code: e.code ?? null };
}
out.ping = await client.ping();
await client.close();

// The stateless era.
const sdkSpeaks2026 = (types.SUPPORTED_PROTOCOL_VERSIONS || []).includes('2026-07-28');
out.stateless = { via: sdkSpeaks2026 ? 'sdk-not-wired' : 'raw' };
const meta = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'memgate-integration-test', version: '1.0.0' },
};
async function rpc(method, params, extra = {}) {
  const body = { jsonrpc: '2.0', id: Math.floor(Math.random() * 1e9), method, params: { ...params, _meta: meta } };
  const h = {
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'MCP-Protocol-Version': '2026-07-28',
    'Mcp-Method': method,
    ...headers,
    ...extra,
  };
  if (params && params.name && !('Mcp-Name' in extra)) h['Mcp-Name'] = params.name;
  const res = await fetch(url, { method: 'POST', headers: h, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}
const discover = await rpc('server/discover', {});
out.stateless.discover = { status: discover.status, result: discover.body.result };
const tl = await rpc('tools/list', {});
out.stateless.toolsList = {
  status: tl.status,
  resultType: tl.body.result?.resultType,
  ttlMs: tl.body.result?.ttlMs,
  cacheScope: tl.body.result?.cacheScope,
  names: (tl.body.result?.tools || []).map((t) => t.name),
};
const call = await rpc('tools/call', { name: 'search_knowledge_base', arguments: { query: 'waxing gibbous' } });
out.stateless.call = { status: call.status, resultType: call.body.result?.resultType, structured: call.body.result?.structuredContent };
const mismatch = await rpc('tools/call', { name: 'get_document', arguments: { id: 'x' } }, { 'Mcp-Name': 'search_knowledge_base' });
out.stateless.mismatch = { status: mismatch.status, code: mismatch.body.error?.code };
const badMeta = { ...meta, 'io.modelcontextprotocol/protocolVersion': '2099-01-01' };
const unsupported = await fetch(url, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: badMeta } }),
});
const ub = await unsupported.json();
out.stateless.unsupported = { status: unsupported.status, code: ub.error?.code, supported: ub.error?.data?.supported };

console.log(JSON.stringify(out));
