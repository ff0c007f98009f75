// The log-in form: POST /api/login, keep the CSRF token for this tab, go on by role.
import { api, setCsrf, describe } from "./common.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

function target(role) {
  const next = new URLSearchParams(location.search).get("next") || "";
  if (/^\/(agent|head)$/.test(next)) return next;
  return role === "agent" ? "/agent" : "/head";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.textContent = "";
  const user = form.user.value.trim();
  const password = form.password.value;
  if (!user || !password) { error.textContent = "请输入用户名和密码"; return; }
  try {
    const done = await api("POST", "/api/login", { user, password });
    setCsrf(done.csrf_token);
    location.assign(target(done.user.role));
  } catch (err) {
    error.textContent = err.status === 401 ? "用户名或密码错误" :
      err.status === 429 ? "尝试次数过多，请稍后再试" : describe(err);
    form.password.value = "";
    form.password.focus();
  }
});
