// The dashboard shell: log in, route #/page to its module, log out.
import { login, session, whenUnauthorized, api } from "./js/api.js";
import { clear, h } from "./js/dom.js";
import * as overview from "./js/overview.js";
import * as keys from "./js/keys.js";
import * as models from "./js/models.js";
import * as playground from "./js/playground.js";

const PAGES = { overview, keys, models, playground };
const $ = (id) => document.getElementById(id);
let current = null;   // the page module on screen, told when it is left (to stop streams, timers)

function showLogin(message) {
  session.clear();
  if (current && current.leave) current.leave();
  current = null;
  $("top").hidden = true;
  clear($("page"));
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("login-user").focus();
}

async function route() {
  if (!session.token) {
    showLogin();
    return;
  }
  $("login").hidden = true;
  $("top").hidden = false;
  $("who").textContent = `${session.user} (${session.role})`;
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  if (!PAGES[name]) {
    location.replace("#/overview");
    return;
  }
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current && current.leave) current.leave();
  current = PAGES[name];
  const page = clear($("page"));
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · llmproxy`;
  try {
    await current.render(page);
  } catch (error) {
    if (error.status !== 401) page.append(h("p", { class: "error", role: "alert" }, error.message));
  }
  const heading = page.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("login-user").value.trim();
  const password = $("login-password").value;
  if (!user || !password) {
    $("login-error").textContent = "Enter your user name and password.";
    return;
  }
  const button = event.submitter || $("login-form").querySelector("button");
  button.disabled = true;
  try {
    await login(user, password);
    $("login-password").value = "";
    $("login-error").textContent = "";
    if (!location.hash || location.hash === "#/") location.hash = "#/overview";
    await route();
  } catch (error) {
    $("login-error").textContent = error.message;
  } finally {
    button.disabled = false;
  }
});

$("logout").addEventListener("click", () => {
  showLogin("You are logged out.");
  history.replaceState(null, "", "#/overview");
});

whenUnauthorized((error) => showLogin(`Please log in again: ${error.message}`));
window.addEventListener("hashchange", route);
// A token from an earlier tab session may be stale: check it once before drawing a page.
if (session.token) {
  api("GET", "/admin/whoami").then(route, (error) => { if (error.status !== 401) route(); });
} else {
  showLogin();
}
