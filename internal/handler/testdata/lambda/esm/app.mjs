// An ES module function, as Lambda's Node.js runtime loads from .mjs.
export const handler = async (event) => ({ records: event.Records.length });
