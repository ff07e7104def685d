// The JS client with a token (x-chroma-token header) against `vecduck run --auth-file`:
// node access.mjs PORT TOKEN -> one JSON line of what it could and could not do.
import { ChromaClient } from "chromadb";

const [port, token] = [Number(process.argv[2]), process.argv[3]];
const headers = { "x-chroma-token": token };
const answer = {};

async function attempt(label, action) {
  try {
    answer[label] = { ok: true, value: await action() };
  } catch (error) {
    answer[label] = { ok: false, error: error.name, message: String(error.message) };
  }
}

const mine = new ChromaClient({ host: "127.0.0.1", port, ssl: false, headers, tenant: "team_a", database: "main" });
await attempt("own_list", async () => (await mine.listCollections()).map((c) => c.name).sort());
await attempt("own_add", async () => {
  const docs = await mine.getCollection({ name: "docs", embeddingFunction: null });
  await docs.add({ ids: ["js1"], embeddings: [[0.5, 0.5]] });
  return await docs.count();
});
const shared = new ChromaClient({ host: "127.0.0.1", port, ssl: false, headers, tenant: "shared", database: "main" });
await attempt("shared_read", async () => {
  const docs = await shared.getCollection({ name: "docs", embeddingFunction: null });
  return (await docs.get({ include: ["documents"] })).documents;
});
await attempt("shared_write", async () => {
  const docs = await shared.getCollection({ name: "docs", embeddingFunction: null });
  await docs.add({ ids: ["js2"], embeddings: [[0.5, 0.5]] });
});
const other = new ChromaClient({ host: "127.0.0.1", port, ssl: false, headers, tenant: "team_b", database: "main" });
await attempt("other_list", async () => (await other.listCollections()).map((c) => c.name));
console.log(JSON.stringify(answer));
