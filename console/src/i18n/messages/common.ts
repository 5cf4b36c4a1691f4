export default {
  common: {
    "zh-CN": {
      retry: "重试", empty: "暂无数据", data: "数据", dataTitle: "本页数据（API 原始响应）",
      noCalls: "本页尚未调用 API", refresh: "刷新", save: "保存", cancel: "取消", edit: "编辑",
      create: "新建", delete: "删除", search: "查询", actions: "操作", saved: "已保存",
      done: "已完成", confirm: "确定", all: "全部", id: "ID", name: "名称", status: "状态",
      createdAt: "创建时间", updatedAt: "更新时间", readOnly: "只读：当前密钥的角色无权修改",
      points: "积分", members: "会员",
    },
    en: {
      retry: "Retry", empty: "No data", data: "Data", dataTitle: "This page's data (raw API answers)",
      noCalls: "This page has called no API yet", refresh: "Refresh", save: "Save",
      cancel: "Cancel", edit: "Edit", create: "New", delete: "Delete", search: "Search",
      actions: "Actions", saved: "Saved", done: "Done", confirm: "OK", all: "All", id: "ID",
      name: "Name", status: "Status", createdAt: "Created", updatedAt: "Updated",
      readOnly: "Read-only: this key's role cannot change it", points: "Points", members: "Members",
    },
  },
  nav: {
    "zh-CN": {
      title: "fuli 运营后台", overview: "概览", members: "会员", tiers: "等级", groups: "社群",
      catalog: "商品与盲盒", campaigns: "红包与团购", tasks: "任务", segments: "人群",
      webhooks: "Webhooks", signOut: "退出", tenant: "租户", timeZone: "时区", role: "角色",
      language: "语言",
    },
    en: {
      title: "fuli console", overview: "Overview", members: "Members", tiers: "Tiers",
      groups: "Groups", catalog: "Catalog & boxes", campaigns: "Red packets & team-buy",
      tasks: "Tasks", segments: "Segments", webhooks: "Webhooks", signOut: "Sign out",
      tenant: "Tenant", timeZone: "Time zone", role: "Role", language: "Language",
    },
  },
  roles: {
    "zh-CN": { admin: "管理员", operator: "运营", ingest: "接入", member: "会员" },
    en: { admin: "admin", operator: "operator", ingest: "ingest", member: "member" },
  },
  signIn: {
    "zh-CN": {
      title: "登录运营后台", key: "API 密钥", placeholder: "fuli_…（运营或管理员密钥）",
      submit: "登录", hint: "密钥仅保存在本标签页的 sessionStorage 中，关闭标签页即失效。",
      required: "请输入 API 密钥",
    },
    en: {
      title: "Sign in to the console", key: "API key", placeholder: "fuli_… (an operator or admin key)",
      submit: "Sign in", hint: "The key stays in this tab's sessionStorage and is gone when the tab closes.",
      required: "Enter an API key",
    },
  },
};
