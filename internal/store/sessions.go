package store

const sessionsSchema = ``
