// @ts-check
// Loads `.env` from the directory the server runs in, like step 5's
// `dotenvy::dotenv()`: variables already set win, and no file is fine.

try {
  process.loadEnvFile(); // Node >= 20.12
} catch (error) {
  if (error.code !== "ENOENT") throw error;
}
