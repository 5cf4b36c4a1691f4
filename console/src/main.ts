import "element-plus/theme-chalk/base.css";
import "element-plus/theme-chalk/el-loading.css";
import "element-plus/theme-chalk/el-message.css";
import "element-plus/theme-chalk/el-message-box.css";
import "./styles.css";

import { ElLoading } from "element-plus";
import { createApp } from "vue";

import App from "./App.vue";
import { i18n, savedLocale } from "./i18n";
import { restore } from "./lib/session";
import { router } from "./router";

async function start(): Promise<void> {
  document.documentElement.lang = savedLocale();
  // A key kept by this tab signs in again before the first page decides where to go.
  await restore();
  createApp(App).use(i18n).use(router).use(ElLoading).mount("#app");
}

void start();
