export default {
  overview: {
    "zh-CN": {
      daily: "近 30 天积分（发放 / 消耗 / 过期 / 冲正 / 会员持有）", hourly: "每小时事件数（近 48 小时）",
      issued: "发放", spent: "消耗", expired: "过期", reversed: "冲正", balance: "会员持有积分",
      flow: "当日流量", events: "事件", members: "有账户的会员", active7: "7 日活跃会员",
      active30: "30 日活跃会员", outboxPending: "待投递事件", outboxLag: "最久待投递", outboxParked: "投递受阻事件",
      seconds: "{n} 秒", none: "无", noActivity: "近 30 天没有积分变动",
    },
    en: {
      daily: "Points, last 30 days (issued / spent / expired / reversed / held by members)",
      hourly: "Events per hour (last 48 hours)", issued: "Issued", spent: "Spent",
      expired: "Expired", reversed: "Reversed", balance: "Held by members", flow: "Flow per day",
      events: "Events", members: "Members with an account", active7: "Active members, 7 days",
      active30: "Active members, 30 days", outboxPending: "Events awaiting delivery", outboxParked: "Events stuck in delivery",
      outboxLag: "Oldest awaiting", seconds: "{n} s", none: "none",
      noActivity: "No points moved in the last 30 days",
    },
  },
};
