package store

const tasksSchema = ``
