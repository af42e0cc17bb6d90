// Reads file outputs through the official `replicate` npm client's FileOutput, with no client setting changed:
// the client wraps an output string in a FileOutput only when it starts with `https:` (or `data:`).
// Env: COGWHEEL_API_URL (with /v1), REPLICATE_API_TOKEN, COGWHEEL_FILE_LIST_MODEL, COGWHEEL_PATH_MODEL;
// NODE_EXTRA_CA_CERTS makes Node trust the local CA, as `cogwheel env` exports it.
import Replicate from "replicate";

const baseUrl = process.env.COGWHEEL_API_URL;
const auth = process.env.REPLICATE_API_TOKEN;
const fileListModel = process.env.COGWHEEL_FILE_LIST_MODEL;
const pathModel = process.env.COGWHEEL_PATH_MODEL;
if (!baseUrl || !auth || !fileListModel || !pathModel) {
  console.error("COGWHEEL_API_URL, REPLICATE_API_TOKEN, COGWHEEL_FILE_LIST_MODEL and COGWHEEL_PATH_MODEL are required");
  process.exit(2);
}

const replicate = new Replicate({ auth, baseUrl });
const report = {};

const out = await replicate.run(fileListModel, { input: { name: "report" } });
report.list_kinds = out.map((item) => item.constructor.name);
report.list_urls = out.map((item) => item.url().href);
report.first_text = await (await out[0].blob()).text();
report.second_json = JSON.parse(await (await out[1].blob()).text());

const single = await replicate.run(pathModel, { input: {} });
report.single_kind = single.constructor.name;
report.single_text = await (await single.blob()).text();

// models.search sends its query JSON-encoded (the client encodes every `data`); the gateway reads it as text.
report.search_names = (await replicate.models.search("file")).results.map((model) => model.name);

console.log(JSON.stringify(report));
