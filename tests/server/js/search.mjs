// The official chromadb JS client's Search API, schemas and sparse vectors against `vecduck run`.
// Usage: node search.mjs PORT INPUT.json. INPUT holds the records and queries (written by
// tests/server/test_js_search.py, which also computes the expected answers). Prints "ok <step>"
// per step, then one line "RESULT <json>" with every answer and the HTTP bodies the client sent,
// and "ALL OK" at the end; exits 1 with the failing step on the first failure.
// Offline: dense text queries use a toy bag-of-letters embedding function registered here, BM25
// ones the @chroma-core/chroma-bm25 package (pure TypeScript, no model).
import fs from "node:fs";
import {
  ChromaClient,
  GroupBy,
  K,
  Knn,
  Max,
  MaxK,
  Min,
  MinK,
  ReadLevel,
  Rrf,
  Schema,
  Search,
  SparseVectorIndexConfig,
  Val,
  registerEmbeddingFunction,
} from "chromadb";
import { ChromaBm25EmbeddingFunction } from "@chroma-core/chroma-bm25";

const port = Number(process.argv[2]);
const input = JSON.parse(fs.readFileSync(process.argv[3], "utf8"));

// Every request and answer, to report the wire format (the client calls the global fetch).
const wire = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (resource, init) => {
  const request = resource instanceof Request ? resource : new Request(resource, init);
  const text = request.method === "GET" ? "" : await request.clone().text();
  const response = await realFetch(resource, init);
  let answer = null;
  try {
    answer = await response.clone().json();
  } catch {
    answer = null;
  }
  wire.push({
    method: request.method,
    path: new URL(request.url).pathname,
    body: text ? JSON.parse(text) : null,
    status: response.status,
    answer,
  });
  return response;
};
const lastBody = (suffix) => {
  for (let i = wire.length - 1; i >= 0; i -= 1) if (wire[i].path.endsWith(suffix)) return wire[i];
  throw new Error(`no request to ...${suffix}`);
};

// A deterministic offline dense embedding function: letter counts folded into `dim` buckets.
class ToyLetters {
  constructor({ dim = 8 } = {}) {
    this.name = "toy_letters";
    this.dim = dim;
  }
  async generate(texts) {
    return texts.map((text) => {
      const vector = new Array(this.dim).fill(0);
      for (const ch of text.toLowerCase()) {
        const code = ch.charCodeAt(0);
        if (code >= 97 && code <= 122) vector[(code - 97) % this.dim] += 1;
      }
      return vector;
    });
  }
  getConfig() {
    return { dim: this.dim };
  }
  static buildFromConfig(config) {
    return new ToyLetters(config);
  }
}
registerEmbeddingFunction("toy_letters", ToyLetters);

const client = new ChromaClient({ host: "127.0.0.1", port, ssl: false });
const out = { searches: {}, batches: {}, schemas: {}, bm25: {}, collections: {} };

let step = "start";
function check(condition, what) {
  if (!condition) throw new Error(`check failed: ${what}`);
}
function same(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}
async function run(name, body) {
  step = name;
  await body();
  console.log(`ok ${name}`);
}
// One search answer's columns (the first payload of a result), as sent back by the server.
function columns(result, i = 0) {
  return {
    ids: result.ids[i],
    scores: result.scores[i],
    documents: result.documents[i],
    metadatas: result.metadatas[i],
    embeddings: result.embeddings[i],
    select: result.select[i],
  };
}
// Run one search and record its payload (as sent) with its answer. A search the server refuses
// is recorded with its error and the script goes on (it then ends with "FAILED", exit status 1).
const failures = [];
async function search(collection, name, searchObject) {
  step = `search ${name}`;
  try {
    const result = await collection.search(searchObject);
    const sent = lastBody("/search").body;
    same(sent.searches.length, 1, "one payload");
    const rows = result.rows();
    same(rows.length, 1, "rows() per payload");
    same(
      rows[0].map((row) => row.id),
      result.ids[0],
      "rows() ids"
    );
    out.searches[name] = { collection: collection.name, payload: sent.searches[0], read_level: sent.read_level ?? null, ...columns(result), rows: rows[0] };
    console.log(`ok ${step}`);
  } catch (error) {
    const sent = wire.length && wire[wire.length - 1].path.endsWith("/search") ? wire[wire.length - 1] : null;
    out.searches[name] = { collection: collection.name, payload: sent ? sent.body.searches[0] : null, error: String(error && error.message ? error.message : error) };
    failures.push(name);
    console.log(`FAILED ${step}: ${error && error.stack ? error.stack : error}`);
  }
}

try {
  const data = input.collections;

  // -- a plain collection: explicit embeddings, a registered toy embedding function --------------
  let dense;
  await run("create dense collection", async () => {
    dense = await client.createCollection({ name: data.dense.name, embeddingFunction: new ToyLetters({ dim: 8 }) });
    out.collections.dense = { create: lastBody("/collections").body, id: dense.id };
    const d = data.dense;
    await dense.add({ ids: d.ids.slice(0, 7), embeddings: d.embeddings.slice(0, 7), documents: d.documents.slice(0, 7), metadatas: d.metadatas.slice(0, 7) });
    await dense.add({ ids: d.ids.slice(7), embeddings: d.embeddings.slice(7), documents: d.documents.slice(7), metadatas: d.metadatas.slice(7) });
    same(await dense.count(), d.ids.length, "count");
  });
  await run("getCollection rebuilds the registered embedding function", async () => {
    dense = await client.getCollection({ name: data.dense.name });
    check(dense.embeddingFunction instanceof ToyLetters, "embedding function from the registry");
    same(dense.configuration.embedding_function, { name: "toy_letters", type: "known", config: { dim: 8 } }, "configuration");
  });

  const q = input.queries;
  const byId = (ids) => K.ID.isIn(ids);
  const dq1 = Knn({ query: q.q1, limit: 6 });
  const dq2d = Knn({ query: q.q2, limit: 6, default: 10 });
  const all1 = Knn({ query: q.q1, limit: 12 });
  const all2 = Knn({ query: q.q2, limit: 12 });
  const dense_searches = {
    filter_in: new Search()
      .where(byId(q.some_ids).and(K("year").gte(q.min_year)))
      .select(K.DOCUMENT, K.SCORE, "genre"),
    contains_page: new Search().where(K.DOCUMENT.contains("river")).limit(2, 1).select(K.DOCUMENT, K.SCORE),
    or_metadata: new Search().where(K("genre").eq("news").or(K("rating").lt(0.25))).select(K.METADATA),
    nin_ne_no_select: new Search().where(K.ID.notIn(["r00", "r11"]).and(K("genre").ne("tech"))).limit(3),
    knn_vector: new Search().rank(Knn({ query: q.q1, limit: 5 })).limit(3).select(K.DOCUMENT, K.SCORE, K.METADATA, K.EMBEDDING),
    knn_text: new Search().rank(Knn({ query: q.text })).limit(4).select(K.SCORE),
    knn_filtered: new Search().where(K("genre").ne("sport")).rank(Knn({ query: q.q2, limit: 4 })).select(K.SCORE, "genre"),
    arith_default: new Search().rank(dq1.multiply(0.7).add(dq2d.multiply(0.3))).limit(5).select(K.SCORE),
    arith_ops: new Search()
      .rank(
        Max(all1, Val(1.5))
          .add(Min(all2.divide(2), Val(3)))
          .add(all1.subtract(all2).abs().multiply(0.1))
          .add(all2.add(1).log().multiply(-0.2))
          .add(all1.multiply(-0.05).exp())
      )
      .select(K.SCORE),
    group_min_score: new Search()
      .rank(all1)
      .groupBy(new GroupBy([K("genre")], new MinK([K.SCORE], 2)))
      .limit(5)
      .select(K.SCORE, "genre"),
    group_max_year: new Search()
      .rank(all2)
      .groupBy(new GroupBy([K("genre")], new MaxK([K("year")], 1)))
      .select(K.SCORE, "genre", "year"),
    select_all: new Search().selectAll().limit(2),
    document_regex: new Search().where(K.DOCUMENT.regex("^[A-P][a-z]+ ").and(K.DOCUMENT.notContains("river"))).select(K.DOCUMENT),
    tags_contains: new Search().where(K("tags").contains("even").and(K("year").lt(2023))).select("tags", K.SCORE),
    // a plain object, as the JS docs also allow: where dict, raw rank JSON, limit object, select list
    plain_object: {
      where: { genre: "tech" },
      rank: { $knn: { query: q.q1, limit: 3 } },
      limit: { limit: 2 },
      select: ["#score", "year"],
    },
  };
  for (const [name, s] of Object.entries(dense_searches)) await search(dense, name, s);

  await run("read level", async () => {
    const result = await dense.search(dense_searches.knn_vector, { readLevel: ReadLevel.INDEX_ONLY });
    const sent = lastBody("/search").body;
    same(sent.read_level, "index_only", "read_level sent");
    same(result.ids[0], out.searches.knn_vector.ids, "same answer");
    out.batches.read_level = { body: sent };
  });

  await run("batch of searches", async () => {
    const names = ["filter_in", "knn_vector", "group_min_score", "knn_text"];
    const result = await dense.search(names.map((name) => dense_searches[name]));
    const sent = lastBody("/search").body;
    same(sent.searches.length, names.length, "payloads in one request");
    const rows = result.rows();
    same(rows.length, names.length, "rows() per payload");
    names.forEach((name, i) => {
      const single = out.searches[name];
      const got = columns(result, i);
      for (const field of ["ids", "scores", "documents", "metadatas", "embeddings", "select"]) {
        same(got[field], single[field], `batch ${name} ${field}`);
      }
      same(rows[i], single.rows, `batch ${name} rows()`);
    });
    out.batches.dense = { names, body: sent };
  });

  // -- explicit sparse vectors on a key with a sparse index (no embedding function) --------------
  let sparse;
  await run("create sparse collection with a Schema", async () => {
    const schema = new Schema().createIndex(new SparseVectorIndexConfig(), data.sparse.key);
    sparse = await client.createCollection({ name: data.sparse.name, schema, embeddingFunction: null });
    out.collections.sparse = { create: lastBody("/collections").body, answer: lastBody("/collections").answer, id: sparse.id };
    const s = data.sparse;
    const metadatas = s.metadatas.map((m) => ({ ...m }));
    await sparse.add({ ids: s.ids, embeddings: s.embeddings, documents: s.documents, metadatas });
    const got = await sparse.get({ ids: [s.ids[0]] });
    same(Object.keys(got.metadatas[0][s.key]).sort(), ["indices", "values"], "sparse vector read back as {indices, values}");
    same(got.metadatas[0][s.key].indices, s.metadatas[0][s.key].indices, "sparse indices");
  });
  const sq = { indices: q.sparse_query.indices, values: q.sparse_query.values };
  const sparse_searches = {
    sparse_knn: new Search().rank(Knn({ query: sq, key: data.sparse.key, limit: 4 })).select(K.SCORE, data.sparse.key),
    rrf_weights: new Search()
      .rank(
        Rrf({
          ranks: [Knn({ query: q.sparse_dense, returnRank: true, limit: 6 }), Knn({ query: sq, key: K(data.sparse.key), returnRank: true, limit: 6 })],
          weights: [0.7, 0.3],
        })
      )
      .limit(5)
      .select(K.SCORE),
    rrf_defaults: new Search()
      .rank(
        Rrf({
          ranks: [
            Knn({ query: q.sparse_dense, returnRank: true, limit: 4, default: 1000 }),
            Knn({ query: sq, key: data.sparse.key, returnRank: true, limit: 4, default: 1000 }),
          ],
          k: 10,
          weights: [1, 3],
          normalize: true,
        })
      )
      .select(K.SCORE, K.DOCUMENT),
  };
  for (const [name, s] of Object.entries(sparse_searches)) await search(sparse, name, s);

  // -- BM25: a Schema with chroma_bm25 on #document -> sparse_embedding --------------------------
  let bm25;
  const b = data.bm25;
  await run("create BM25 collection with a Schema", async () => {
    const schema = new Schema().createIndex(
      new SparseVectorIndexConfig({ sourceKey: K.DOCUMENT, embeddingFunction: new ChromaBm25EmbeddingFunction(), bm25: true }),
      b.key
    );
    bm25 = await client.createCollection({ name: b.name, schema, embeddingFunction: null });
    out.collections.bm25 = { create: lastBody("/collections").body, answer: lastBody("/collections").answer, id: bm25.id };
  });
  await run("add BM25 records: vectors from the JS package, then from the server", async () => {
    const half = b.client_computed;
    // the full collection computes sparse_embedding from the documents client-side
    await bm25.add({ ids: b.ids.slice(0, half), embeddings: b.embeddings.slice(0, half), documents: b.documents.slice(0, half), metadatas: b.metadatas.slice(0, half) });
    const sent = lastBody("/add").body;
    check(sent.metadatas.every((m) => m[b.key] && m[b.key]["#type"] === "sparse_vector"), "the client sent BM25 vectors");
    out.bm25.client_add_body = sent;
    // a handle has no schema: the server computes them
    const handle = client.collection(bm25.id);
    await handle.add({ ids: b.ids.slice(half), embeddings: b.embeddings.slice(half), documents: b.documents.slice(half), metadatas: b.metadatas.slice(half) });
    check(lastBody("/add").body.metadatas.every((m) => !(b.key in m)), "the handle sent no BM25 vectors");
    const got = await bm25.get({ include: ["documents", "metadatas"] });
    same(got.ids, b.ids, "all records");
    out.bm25.stored = Object.fromEntries(got.ids.map((id, i) => [id, got.metadatas[i][b.key] ?? null]));
  });
  await run("getCollection reads the schema back", async () => {
    const again = await client.getCollection({ name: b.name, embeddingFunction: null });
    const index = again.schema.keys[b.key]?.sparseVector?.sparseVectorIndex;
    check(index && index.enabled, "sparse index enabled");
    same(index.config.sourceKey, "#document", "source key");
    same(index.config.bm25, true, "bm25");
    check(index.config.embeddingFunction instanceof ChromaBm25EmbeddingFunction, "chroma_bm25 rebuilt from the package");
    out.schemas.bm25 = { answer: lastBody(`/collections/${b.name}`).answer.schema, client: again.schema.serializeToJSON() };
    const sparseAgain = await client.getCollection({ name: data.sparse.name, embeddingFunction: null });
    const sparseIndex = sparseAgain.schema.keys[data.sparse.key]?.sparseVector?.sparseVectorIndex;
    check(sparseIndex && sparseIndex.enabled, "plain sparse index enabled");
    out.schemas.sparse = { answer: lastBody(`/collections/${data.sparse.name}`).answer.schema, client: sparseAgain.schema.serializeToJSON() };
    await client.getCollection({ name: data.dense.name });
    out.schemas.dense = { answer: lastBody(`/collections/${data.dense.name}`).answer.schema };
    bm25 = again;
  });
  const bm25_searches = {
    bm25_text: new Search().rank(Knn({ query: q.bm25_text, key: b.key, limit: 5 })).select(K.SCORE, K.DOCUMENT),
    bm25_filtered: new Search().where(K("part").eq("server")).rank(Knn({ query: q.bm25_text2, key: b.key })).select(K.SCORE),
    bm25_hybrid: new Search()
      .rank(
        Rrf({
          ranks: [
            Knn({ query: q.bm25_dense, returnRank: true, limit: 8, default: 100 }),
            Knn({ query: q.bm25_text, key: b.key, returnRank: true, limit: 8, default: 100 }),
          ],
          k: 10,
          weights: [0.4, 0.6],
        })
      )
      .limit(6)
      .select(K.SCORE, "part"),
  };
  for (const [name, s] of Object.entries(bm25_searches)) await search(bm25, name, s);

  // updates on a copy (the searches above are replayed later on the collection as it is)
  let updated;
  await run("update BM25 documents: a vector from the JS package, then from the server", async () => {
    const schema = new Schema().createIndex(
      new SparseVectorIndexConfig({ sourceKey: K.DOCUMENT, embeddingFunction: new ChromaBm25EmbeddingFunction(), bm25: true }),
      b.key
    );
    updated = await client.createCollection({ name: b.updated_name, schema, embeddingFunction: null });
    await updated.add({ ids: b.ids, embeddings: b.embeddings, documents: b.documents, metadatas: b.metadatas });
    const { client: viaClient, server: viaServer } = b.updates;
    await updated.update({ ids: [viaClient.id], documents: [viaClient.document], embeddings: [viaClient.embedding] });
    check(lastBody("/update").body.metadatas[0][b.key]["#type"] === "sparse_vector", "the client sent a BM25 vector");
    await client.collection(updated.id).update({ ids: [viaServer.id], documents: [viaServer.document], embeddings: [viaServer.embedding] });
    check(!lastBody("/update").body.metadatas, "the handle sent no metadata");
    const got = await updated.get({ ids: [viaClient.id, viaServer.id], include: ["documents", "metadatas"] });
    same(got.documents, [viaClient.document, viaServer.document], "documents updated");
    out.bm25.updated = Object.fromEntries(got.ids.map((id, i) => [id, got.metadatas[i][b.key] ?? null]));
  });
  await search(updated, "bm25_after_update", new Search().rank(Knn({ query: q.bm25_text, key: b.key, limit: 5 })).select(K.SCORE, K.DOCUMENT));

  await run("BM25 vectors of the probe texts", async () => {
    out.bm25.probes = await new ChromaBm25EmbeddingFunction().generate(input.bm25_probes);
    out.bm25.config = new ChromaBm25EmbeddingFunction().getConfig();
  });

  out.wire = wire.filter((w) => w.method !== "GET").map(({ method, path, body, status }) => ({ method, path, body, status }));
  console.log(`RESULT ${JSON.stringify(out)}`);
  if (failures.length) {
    console.log(`FAILED searches: ${failures.join(", ")}`);
    process.exit(1);
  }
  console.log("ALL OK");
} catch (error) {
  console.log(`FAILED at ${step}: ${error && error.stack ? error.stack : error}`);
  process.exit(1);
}
