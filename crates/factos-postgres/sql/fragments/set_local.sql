SET LOCAL {name} = '{value}'
