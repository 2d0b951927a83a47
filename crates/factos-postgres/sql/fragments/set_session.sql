SET {name} = '{value}'
