// "/": where this browser belongs, by the signed-in user's role.
import { whoami } from "./common.js";

const me = await whoami();
if (!me) location.replace("/login");
else if (me.role === "head" || me.role === "office") location.replace("/head");
else if (me.role === "agent") location.replace("/agent");
else document.querySelector("main").textContent = "此账号没有工作台（角色：" + me.role + "）。";
