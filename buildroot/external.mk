include $(sort $(wildcard $(BR2_EXTERNAL_LOOKOUT_PATH)/package/*/*.mk))
