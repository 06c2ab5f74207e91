// Drives memgate's /mcp with the official v2 TypeScript client
// (@modelcontextprotocol/client, which speaks 2026-07-28) in one negotiation
// mode: lists every resource following cursors, reads one, lists the
// templates, reads a search, completes a document id, lists and gets the
// coach's prompt, and calls both tools (the client validates structuredContent
// against each outputSchema). Prints one JSON object with what it saw.
//
// Usage: node client_v2.mjs http://127.0.0.1:PORT/mcp auto|legacy|pin
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const url = new URL(process.argv[2]);
const mode = process.argv[3] || 'auto';
const versionNegotiation = { mode: mode === 'pin' ? { pin: '2026-07-28' } : mode };
const client = new Client({ name: 'memgate-integration-test', version: '1.0.0' }, { versionNegotiation });
const transport = new StreamableHTTPClientTransport(url);
await client.connect(transport);
const out = {
  mode,
  negotiatedVersion: client.getNegotiatedProtocolVersion() ?? null,
  era: client.getProtocolEra() ?? null,
  capabilities: client.getServerCapabilities() ?? null,
};

// Every resource, page by page; a cursor seen twice is a failure (no loop).
const uris = [];
const cursors = new Set();
let pages = 0;
let cursor;
do {
  const page = await client.listResources(cursor ? { cursor } : {});
  pages += 1;
  for (const r of page.resources) uris.push({ uri: r.uri, name: r.name, mimeType: r.mimeType, description: r.description });
  cursor = page.nextCursor;
  if (cursor && cursors.has(cursor)) throw new Error(`cursor repeated: ${cursor}`);
  if (cursor) cursors.add(cursor);
} while (cursor && pages < 100);
out.resources = { pages, count: uris.length, first: uris[0] ?? null, all: uris };
const compost = uris.find((r) => r.name === 'Composting at Home');
const read = await client.readResource({ uri: compost.uri });
out.read = { uri: read.contents[0].uri, mimeType: read.contents[0].mimeType, length: read.contents[0].text.length,
  mentionsCompost: read.contents[0].text.toLowerCase().includes('compost') };
try {
  await client.readResource({ uri: 'kb://doc/0000000000000000' });
  out.readMissing = 'no error';
} catch (e) {
  out.readMissing = { code: e.code ?? null };
}
try {
  await client.listResources({ cursor: 'bm90LW91cnM' });
  out.badCursor = 'no error';
} catch (e) {
  out.badCursor = { code: e.code ?? null };
}
const templates = await client.listResourceTemplates();
out.templates = templates.resourceTemplates.map((t) => t.uriTemplate);
const search = await client.readResource({ uri: 'kb://search?q=waxing%20gibbous&k=2' });
out.searchResource = { mimeType: search.contents[0].mimeType, hits: JSON.parse(search.contents[0].text).hits.map((h) => h.path) };
const id = compost.uri.slice('kb://doc/'.length);
const completion = await client.complete({ ref: { type: 'ref/resource', uri: 'kb://doc/{id}' }, argument: { name: 'id', value: id.slice(0, 2) } });
out.completion = { values: completion.completion.values, includesId: completion.completion.values.includes(id) };

const prompts = await client.listPrompts();
out.prompts = prompts.prompts.map((p) => ({ name: p.name, arguments: (p.arguments || []).map((a) => ({ name: a.name, required: !!a.required })) }));
const prompt = await client.getPrompt({ name: 'answer_from_knowledge_base', arguments: { question: 'How do I keep a compost heap from smelling?' } });
out.prompt = {
  description: prompt.description,
  roles: prompt.messages.map((m) => m.role),
  grounding: prompt.messages[0].content.text,
  question: prompt.messages[1].content.text,
};

const tools = await client.listTools();
out.tools = tools.tools.map((t) => ({ name: t.name, hasOutputSchema: !!t.outputSchema }));
const hit = await client.callTool({ name: 'search_knowledge_base', arguments: { query: 'fencing token', k: 2 } });
out.search = { isError: !!hit.isError, structured: hit.structuredContent, hasText: !!hit.content?.[0]?.text };
const doc = await client.callTool({ name: 'get_document', arguments: { id: hit.structuredContent.hits[0].id } });
out.document = { isError: !!doc.isError, title: doc.structuredContent?.title, hasText: !!doc.content?.[0]?.text };
await client.close();
console.log(JSON.stringify(out));
