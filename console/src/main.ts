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
import { prefetchPage, router, waitForSession } from "./router";

document.documentElement.lang = savedLocale();
// A key kept by this tab signs in again while the first page's code loads: the router waits
// for the one, the other is fetched at once.
waitForSession(restore());
prefetchPage(window.location.hash.slice(1) || "/overview");
createApp(App).use(i18n).use(router).use(ElLoading).mount("#app");
